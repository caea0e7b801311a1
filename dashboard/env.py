"""Typed environment helpers for settings: each fails with a message saying how to fix the value."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is too small: the minimum is {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, default: str | None = None) -> str:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (Docker/Kubernetes secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc.strerror}") from None
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"{name} is not set: set it, or {name}_FILE to a file that holds it")
    return value


# Keys that are public (shipped in this repository, or Django's throwaway prefix): never a production key.
KNOWN_SECRET_KEYS = frozenset(
    {
        "change-me-to-a-long-random-string",  # the placeholder of .env.example
        "insecure-embedded-mode-key-change-me",  # embedded mode's key
        "change-me",
    }
)
MIN_SECRET_KEY_LENGTH = 50


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` is unfit to sign production sessions, or None when it is fine."""
    if key in KNOWN_SECRET_KEYS or key.startswith("django-insecure-"):
        return "a published example key"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"too short ({len(key)} characters; at least {MIN_SECRET_KEY_LENGTH})"
    if len(set(key)) < 5:
        return "not random (fewer than 5 different characters)"
    return None


def production_secret_key(name: str) -> str:
    """The secret key from ``name`` (or ``name_FILE``), refused with a message when it is unfit for production."""
    key = env_secret(name)
    problem = secret_key_problem(key)
    if problem is not None:
        raise ImproperlyConfigured(
            f"{name} is {problem}, and WND_PRODUCTION=1 refuses it. Set a long random one, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    return key
