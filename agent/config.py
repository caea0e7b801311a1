"""Agent configuration: a TOML or JSON file, overridable from the command line.

Every path the agent reads is configurable because nodes differ (``C:\\k`` vs
``C:\\opt``, Flannel under ``C:\\etc\\kube-flannel``, HostProcess containers
that see the host at ``C:\\`` but keep their own files under
``$CONTAINER_SANDBOX_MOUNT_POINT`` such as ``C:\\hpc``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.presets import PRESET_NAMES, PRESETS

DEFAULT_LOGS: dict[str, str] = dict(PRESETS["generic"].logs)


# Keys whose values are paths: ``%NAME%`` and ``${NAME}`` in them are replaced from the environment,
# so one agent.toml serves every HostProcess runtime (``$CONTAINER_SANDBOX_MOUNT_POINT`` is
# ``C:\hpc`` on containerd 1.7+ and a per-container volume path on containerd 1.6).
PATH_KEYS = frozenset({"token_file", "ca_bundle", "state_dir", "hns_module", "scenario", "files", "logs"})
_ENV_REFERENCE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """The configuration is unusable; the message names the key and how to fix it."""


def expand_env(value: str, key: str, environ: dict[str, str] | None = None) -> str:
    """Replace ``%NAME%`` and ``${NAME}`` with the environment's values, on every platform.

    A reference to a variable that is not set is a ``ConfigError`` naming the key: a path that
    silently keeps ``%CONTAINER_SANDBOX_MOUNT_POINT%`` would fail much later and less clearly.
    """
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise ConfigError(f"{key} refers to the environment variable {name}, which is not set")
        return env[name]

    return _ENV_REFERENCE.sub(replace, value)


@dataclass
class AgentConfig:
    dashboard: str = ""  # https://doctor.example.com
    token: str = ""
    # Read at every request when token is empty: a mounted Secret, or a projected ServiceAccount
    # token (audience: the dashboard) that kubelet rotates; the dashboard verifies it by TokenReview.
    token_file: str = ""
    cluster: str = ""
    node: str = ""  # defaults to the lower-cased host name (NODE_NAME in a DaemonSet)
    interval: float = 60.0  # seconds between collections
    ca_bundle: str = ""  # PEM file to verify the dashboard with; empty: the system store
    verify_tls: bool = True
    state_dir: str = r"C:\ProgramData\windows-node-doctor"  # queue, sequence, log offsets
    queue_max_bytes: int = 20 * 1024 * 1024
    probe_timeout: float = 60.0  # on-demand programs (ping, curl, Resolve-DnsName)
    budget: float = 90.0  # seconds the probe script may take per cycle; HNS probes run last
    slow_interval: float = 3600.0  # seconds between runs of the hourly probes (OS, hotfixes, BitLocker, ...)
    send_timeout: float = 30.0
    max_attempts: int = 5  # per flush, for one report, before waiting for the next cycle
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_log_bytes: int = 256 * 1024  # per log per report
    initial_log_bytes: int = 64 * 1024  # how much of an existing log the first report carries
    max_output_bytes: int = 16 * 1024 * 1024  # per probe output; over it the probe is marked truncated
    powershell: str = "powershell.exe"
    hns_module: str = ""  # e.g. C:\k\hns.psm1 (or hns.v2.psm1), imported before the HNS probes
    preset: str = ""  # aks, eks, kubeadm, rke2, generic; empty: detected from the node (agent.presets)
    # Explicit paths, over the preset's: known file name -> path, log kind -> path.
    files: dict[str, str] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    disabled_probes: list[str] = field(default_factory=list)
    scenario: str = ""  # replay this scenario file instead of running PowerShell
    websocket: bool = True  # open the on-demand request channel

    def resolved_token(self) -> str:
        if self.token:
            return self.token
        if self.token_file:
            try:
                return Path(self.token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"token_file {self.token_file!r} cannot be read: {exc.strerror}") from None
        return ""

    def resolved_node(self) -> str:
        return (self.node or os.environ.get("NODE_NAME") or socket.gethostname()).lower()

    def validate(self) -> None:
        if not self.dashboard.startswith(("https://", "http://")):
            raise ConfigError(f"dashboard must be an http(s) URL, got {self.dashboard!r}")
        if not self.cluster:
            raise ConfigError("cluster is required (the name the dashboard shows this node under)")
        if self.interval < 1:
            raise ConfigError("interval must be at least 1 second")
        if self.queue_max_bytes < 64 * 1024:
            raise ConfigError("queue_max_bytes must be at least 65536")
        if self.preset and self.preset not in PRESET_NAMES:
            raise ConfigError(
                f"preset must be one of {', '.join(PRESET_NAMES)} (or unset to detect it), got {self.preset!r}"
            )


def load_config(path: str | os.PathLike[str]) -> AgentConfig:
    """Read a ``.toml`` or ``.json`` file; unknown keys are an error (a typo must not pass silently)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    try:
        data: Any = tomllib.loads(raw.decode("utf-8-sig")) if p.suffix.lower() == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {p} must hold a table/object at the top")
    return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> AgentConfig:
    known = {f.name: f for f in fields(AgentConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
    cfg = AgentConfig()
    for key, value in data.items():
        default = getattr(cfg, key)
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a table of name = path")
            value = {**default, **{str(k): str(v) for k, v in value.items()}}
            if key in PATH_KEYS:
                value = {k: expand_env(v, f"{key}.{k}") for k, v in value.items()}
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false")
        elif isinstance(default, int | float) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{key} must be a number")
            value = type(default)(value)
        elif isinstance(default, list):
            if not isinstance(value, list):
                raise ConfigError(f"{key} must be a list")
        elif not isinstance(value, str):
            raise ConfigError(f"{key} must be a string")
        elif key in PATH_KEYS:
            value = expand_env(value, key)
        setattr(cfg, key, value)
    return cfg
