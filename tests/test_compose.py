"""docker-compose.yml is the production path: it must parse and name its services."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_parses_and_names_the_production_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "migrate"} <= set(services)
    for name in ("postgres", "redis", "web", "worker", "beat"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["image"] == "windows-node-doctor:latest"


def test_web_and_worker_share_the_bundle_volume_and_redis_keeps_its_queue() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("web", "worker"):
        environment = services[name]["environment"]
        assert environment["WND_BUNDLE_STORAGE"] == "file"
        assert f"bundles:{environment['WND_BUNDLE_DIR']}" in services[name]["volumes"]
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_healthchecks_use_what_the_image_has() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        assert "pgrep" not in test and "curl" not in test, name  # python:slim has neither
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["watcher"]["healthcheck"]["test"][1:4] == ["python", "-m", "dashboard.server.heartbeat"]


def test_every_variable_the_settings_read_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    read = set(re.findall(r'env_\w+\("([A-Z_]+)"', (ROOT / "dashboard" / "settings.py").read_text()))
    assert read - documented == set()
