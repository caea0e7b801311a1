"""Environment references in the agent's path settings (one agent.toml for every HostProcess runtime)."""

from __future__ import annotations

import pytest

from agent.config import ConfigError, config_from_dict


def test_sandbox_mount_point_references_expand_in_path_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINER_SANDBOX_MOUNT_POINT", r"C:\hpc")
    cfg = config_from_dict(
        {
            "token_file": r"%CONTAINER_SANDBOX_MOUNT_POINT%\var\run\secrets\token",
            "ca_bundle": r"${CONTAINER_SANDBOX_MOUNT_POINT}\etc\ca.pem",
            "logs": {"kubelet": r"%CONTAINER_SANDBOX_MOUNT_POINT%\k\kubelet.log"},
        }
    )
    assert cfg.token_file == r"C:\hpc\var\run\secrets\token"
    assert cfg.ca_bundle == r"C:\hpc\etc\ca.pem"
    assert cfg.logs["kubelet"] == r"C:\hpc\k\kubelet.log"


def test_a_reference_to_an_unset_variable_is_an_error_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTAINER_SANDBOX_MOUNT_POINT", raising=False)
    with pytest.raises(ConfigError, match="token_file refers to the environment variable CONTAINER_SANDBOX"):
        config_from_dict({"token_file": r"%CONTAINER_SANDBOX_MOUNT_POINT%\token"})


def test_values_that_are_not_paths_are_left_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTER", "x")
    assert config_from_dict({"cluster": "%CLUSTER%"}).cluster == "%CLUSTER%"
