"""Production settings refuse bad values with a message; the documented ones pass ``check --deploy``."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dashboard.env import secret_key_problem

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
GOOD_KEY = secrets.token_urlsafe(50)
SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'hsts': s.SECURE_HSTS_SECONDS, "
    "'proxy': s.SECURE_PROXY_SSL_HEADER, 'redirect': s.SECURE_SSL_REDIRECT, 'oidc': s.WND_OIDC_ENABLED}))"
)


def shipped() -> dict[str, str]:
    """The variables of .env.example as compose would pass them."""
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.M))


def documented_production() -> dict[str, str]:
    return dict(re.findall(r"^# PRODUCTION: ([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.M))


def run(env: dict[str, str], *argv: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """A fresh Python process with only ``env`` (and the basics) for settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WND_", "DATABASE_", "REDIS_"))}
    full = {**base, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "WND_VAR_DIR": str(tmp), **env}
    command = [sys.executable, *argv] if argv else [sys.executable, "-c", SHOW]
    return subprocess.run(command, cwd=ROOT, env=full, capture_output=True, text=True, timeout=120)


def test_env_example_as_shipped_stops_only_at_its_placeholder_key_and_says_how_to_fix_it(tmp_path: Path) -> None:
    result = run({**shipped(), "WND_VAR_DIR": str(tmp_path)}, tmp=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is a published example key, and WND_PRODUCTION=1 refuses it" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr


def test_env_example_with_a_real_key_loads_and_its_empty_database_url_means_the_default(tmp_path: Path) -> None:
    result = run({**shipped(), "DJANGO_SECRET_KEY": GOOD_KEY, "WND_VAR_DIR": str(tmp_path)}, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert (loaded["hsts"], loaded["proxy"], loaded["redirect"], loaded["oidc"]) == (0, None, False, False)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("change-me-to-a-long-random-string", "a published example key"),
        ("insecure-embedded-mode-key-change-me", "a published example key"),
        ("django-insecure-" + "x7" * 30, "a published example key"),
        ("s3cr3t-but-short", "too short (16 characters; at least 50)"),
        ("a" * 60, "not random (fewer than 5 different characters)"),
    ],
)
def test_a_bad_secret_key_is_refused_in_production(key: str, why: str) -> None:
    assert secret_key_problem(key) == why


def test_a_random_key_of_fifty_characters_is_accepted() -> None:
    assert secret_key_problem(GOOD_KEY) is None


def test_production_refuses_a_short_key_at_start(tmp_path: Path) -> None:
    result = run({"WND_PRODUCTION": "1", "DJANGO_SECRET_KEY": "short-key"}, tmp=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is too short (9 characters; at least 50)" in result.stderr


def test_production_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    result = run({"WND_PRODUCTION": "1"}, tmp=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_check_deploy_is_clean_with_the_documented_production_values(tmp_path: Path) -> None:
    values = documented_production()
    assert values["WND_PRODUCTION"] == "1"
    env = {**values, "DJANGO_SECRET_KEY": GOOD_KEY, "REDIS_URL": "redis://127.0.0.1:9/0"}
    result = run(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING", tmp=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_the_ssl_redirect_spares_the_probes(client: Any, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    response = client.get("/login/")
    assert response.status_code == 301 and response["Location"].startswith("https://")


@pytest.mark.django_db
def test_behind_the_proxy_a_forwarded_https_request_gets_hsts(client: Any, settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    response = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
