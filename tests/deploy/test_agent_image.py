"""The agent's packaging and Windows image context: wheels that build from the repository, an
engine that installs alone, and an assembled tree that matches the DaemonSet's command line.

The context is assembled from a small stand-in for the CPython embeddable zip (this machine
cannot run Windows binaries, and the real zip is 10 MB from python.org); the dependencies'
win_amd64 wheels come from the package index, checked against their pinned hashes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest

from tests.deploy.conftest import KUBERNETES, ROOT, kustomize

SANDBOX = "%CONTAINER_SANDBOX_MOUNT_POINT%"
BUILD_CONTEXT = ROOT / "deploy" / "agent" / "build_context.py"
# The ._pth file as python.org ships it in python-3.12.x-embed-amd64.zip.
EMBEDDED_PTH = "python312.zip\r\n.\r\n\r\n# Uncomment to run site.main() automatically\r\n#import site\r\n"


def build_wheels(out: Path) -> dict[str, Path]:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out),
         str(ROOT / "deploy" / "agent"), str(ROOT / "deploy" / "diagnostics")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {w.name.split("-")[0]: w for w in out.glob("*.whl")}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_wheels(tmp_path_factory.mktemp("wheels"))


def stand_in_zip(folder: Path) -> tuple[Path, str]:
    archive = folder / "python-3.12.10-embed-amd64.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("python.exe", b"MZ stand-in, never run")
        zf.writestr("python312.zip", b"PK stand-in standard library")
        zf.writestr("python312._pth", EMBEDDED_PTH)
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("agent-image")
    archive, digest = stand_in_zip(folder)
    out = folder / "context"
    result = subprocess.run(
        [sys.executable, str(BUILD_CONTEXT), str(out), "--python-zip", str(archive), "--python-sha256", digest],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def daemonset() -> dict[str, Any]:
    objects = kustomize(KUBERNETES / "overlays" / "production")
    return next(o for o in objects if o["kind"] == "DaemonSet")


def in_context(context: Path, windows_path: str) -> Path:
    """Where ``%CONTAINER_SANDBOX_MOUNT_POINT%\\...`` lands in the image: the Dockerfile copies the context to C:\\."""
    assert windows_path.startswith(SANDBOX + "\\"), windows_path
    return context.joinpath(*PureWindowsPath(windows_path[len(SANDBOX) + 1 :]).parts)


def test_the_agent_and_engine_wheels_build_from_the_repository(wheels: dict[str, Path]) -> None:
    assert set(wheels) == {"windows_node_doctor_agent", "windows_node_doctor_diagnostics"}
    with zipfile.ZipFile(wheels["windows_node_doctor_agent"]) as zf:
        names = set(zf.namelist())
        metadata = zf.read("windows_node_doctor_agent-0.1.0.dist-info/METADATA").decode()
    assert {"agent/__main__.py", "agent/cli.py", "agent/config.py"} <= names
    assert not any(n.startswith("diagnostics/") or "__pycache__" in n for n in names)
    assert "Requires-Dist: windows-node-doctor-diagnostics==0.1.0" in metadata
    if (ROOT / "agent" / "probes.ps1").exists():
        assert "agent/probes.ps1" in names
    with zipfile.ZipFile(wheels["windows_node_doctor_diagnostics"]) as zf:
        names = set(zf.namelist())
        entry_points = zf.read("windows_node_doctor_diagnostics-0.1.0.dist-info/entry_points.txt").decode()
    assert {"diagnostics/__main__.py", "diagnostics/cli.py", "diagnostics/checks/__init__.py"} <= names
    assert "windows-node-doctor-diagnose = diagnostics.cli:main" in entry_points


def test_the_wheels_carry_every_module_of_their_package(wheels: dict[str, Path]) -> None:
    for wheel, package in (("windows_node_doctor_agent", "agent"), ("windows_node_doctor_diagnostics", "diagnostics")):
        with zipfile.ZipFile(wheels[wheel]) as zf:
            names = set(zf.namelist())
        sources = {str(p.relative_to(ROOT)) for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts}
        assert sources <= names, sources - names


def test_package_versions_agree() -> None:
    versions = {
        tomllib.loads((ROOT / "deploy" / name / "pyproject.toml").read_text())["project"]["version"]
        for name in ("agent", "diagnostics")
    }
    versions.add(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])
    assert len(versions) == 1


def test_the_engine_installs_alone_and_runs_as_a_module_and_a_command(wheels: dict[str, Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
         str(wheels["windows_node_doctor_diagnostics"])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    for argv in ([str(venv / "bin" / "python"), "-m", "diagnostics", "--help"],
                 [str(venv / "bin" / "windows-node-doctor-diagnose"), "--help"]):  # fmt: skip
        run = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, check=False)
        assert run.returncode == 0, run.stderr
        assert "usage" in run.stdout.lower()
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import diagnostics; print(diagnostics.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert str(venv) in where.stdout  # the installed copy, not the repository's


def test_the_context_holds_python_with_site_packages_on_its_path(context: Path) -> None:
    python = context / "python"
    pth = (python / "python312._pth").read_text(encoding="utf-8").splitlines()
    assert pth == ["python312.zip", ".", r"Lib\site-packages", "import site"]
    site = python / "Lib" / "site-packages"
    for module in ("agent/__main__.py", "diagnostics/__main__.py", "websockets/__init__.py", "yaml/__init__.py"):
        assert (site / module).exists(), module
    assert list(site.glob("websockets-*.dist-info")) and list(site.glob("*yaml*.dist-info"))
    assert any(p.name.endswith(".pyd") for p in site.rglob("*")), "the win_amd64 builds, not Linux ones"
    assert not any(p.suffix == ".so" for p in site.rglob("*"))
    assert not (site / "bin").exists()


def test_the_context_matches_the_daemonsets_command_line(context: Path) -> None:
    agent = daemonset()
    container = agent["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[0] == SANDBOX + r"\python\python.exe"  # python.exe itself, no shell in between
    assert in_context(context, command[0]).is_file()
    assert command[1:3] == ["-m", "agent"]
    site = context / "python" / "Lib" / "site-packages"
    assert (site / "agent" / "__main__.py").exists()
    config = command[command.index("--config") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    # Volumes are mounted below the sandbox mount point, at their mountPath.
    assert PureWindowsPath(config[len(SANDBOX) :]).parent.as_posix() == mounts["config"]
    config_map = next(
        o
        for o in kustomize(KUBERNETES / "overlays" / "production")
        if o["metadata"]["name"].startswith("node-doctor-agent-config")
    )
    token_file = tomllib.loads(config_map["data"]["agent.toml"])["token_file"]
    assert token_file.startswith(SANDBOX)
    assert PureWindowsPath(token_file[len(SANDBOX) :]).parent.as_posix() == mounts["token"]
    token = next(v for v in agent["spec"]["template"]["spec"]["volumes"] if v["name"] == "token")
    assert PureWindowsPath(token_file).name == token["projected"]["sources"][0]["serviceAccountToken"]["path"]


def test_the_dockerfile_copies_the_context_where_the_command_expects_it_and_runs_nothing() -> None:
    dockerfile = (ROOT / "deploy" / "agent" / "Dockerfile.windows").read_text()
    instructions = [line.split()[0] for line in dockerfile.splitlines() if line and not line.startswith("#")]
    assert "RUN" not in instructions
    base = next(line for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert base.startswith("FROM mcr.microsoft.com/oss/kubernetes/windows-host-process-containers-base-image:v")
    assert "COPY python /python" in dockerfile


def test_a_python_zip_with_the_wrong_checksum_is_refused(tmp_path: Path) -> None:
    archive, _digest = stand_in_zip(tmp_path)
    result = subprocess.run(
        [sys.executable, str(BUILD_CONTEXT), str(tmp_path / "out"), "--python-zip", str(archive)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "SHA-256 is" in result.stderr and "expected 4acbed6d" in result.stderr
    assert not (tmp_path / "out" / "python" / "python.exe").exists()


def test_the_release_workflow_builds_both_images_the_way_the_docs_say() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    steps = workflow["jobs"]["images"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "deploy/agent/build_context.py build/agent-context" in runs
    builds = {s["id"]: s["with"] for s in steps if s.get("uses", "").startswith("docker/build-push-action")}
    assert builds["agent"]["platforms"] == "windows/amd64"
    assert builds["agent"]["file"] == "deploy/agent/Dockerfile.windows"
    assert builds["agent"]["context"] == "build/agent-context"
    assert builds["dashboard"]["context"] == "." and builds["dashboard"]["push"] is True
