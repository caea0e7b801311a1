"""A real kube-apiserver (../shared/kube) for the install's tests, and kubectl against it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
APISERVER = ROOT.parent / "shared" / "kube" / "apiserver.py"
OVERLAYS = sorted(p.name for p in (KUBERNETES / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def kustomize(path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` as a list of objects."""
    result = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass
class Kube:
    """kubectl bound to the test API server's admin kubeconfig."""

    kubeconfig: str

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        return subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, env=env, check=False, timeout=120
        )

    def apply(self, objects: list[dict[str, Any]], *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", *extra, stdin=yaml.safe_dump_all(objects))


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed for the install's tests")
    folder = Path(tempfile.mkdtemp(prefix="wnd-deploy-kube-"))
    started = subprocess.run(
        ["python3", str(APISERVER), "start", str(folder)], capture_output=True, text=True, check=False, timeout=180
    )
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    try:
        yield Kube(info["kubeconfig"])
    finally:
        subprocess.run(["python3", str(APISERVER), "stop", str(folder)], check=False, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
