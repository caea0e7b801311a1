"""Two watcher replicas with leader election against the real API server: stopping the leader hands over."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dashboard.cluster.leader import Election
from tests.kubeapi import ApiError, KubeApi

from .conftest import wait_for

ROOT = Path(__file__).resolve().parents[3]
LEASE = ("windows-node-doctor", "node-doctor-watcher")


class Replica:
    """``manage.py watch_cluster`` in a process of its own, its output collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "watch_cluster"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def holder(kube: KubeApi) -> str:
    try:
        lease = kube.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{LEASE[0]}/leases/{LEASE[1]}")[1]
    except ApiError:
        return ""
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def test_the_lease_settings_are_checked() -> None:
    assert Election.parse("") is None
    election = Election.parse("windows-node-doctor/watcher", 15)
    assert election is not None and election.renew_seconds < election.lease_seconds
    with pytest.raises(ValueError, match="expected namespace/name"):
        Election.parse("watcher")


def test_when_the_leader_stops_the_other_replica_takes_over(kube: KubeApi, tmp_path: Path) -> None:
    kubeconfig = kube.kubeconfig_for(tmp_path / "dashboard.kubeconfig", token=kube.dashboard_token(), context="lab")
    with contextlib.suppress(ApiError):
        kube.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{LEASE[0]}/leases/{LEASE[1]}")
    env = dict(
        os.environ,
        WND_VAR_DIR=str(tmp_path / "var"),
        WND_CLUSTERS="lab",
        WND_CLUSTERS_FILE="",
        WND_KUBECONFIG=str(kubeconfig),
        WND_WATCHER_LEASE="/".join(LEASE),
        WND_WATCHER_LEASE_SECONDS="3",
        DJANGO_SETTINGS_MODULE="dashboard.settings",
    )
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    first = Replica(env)
    replicas: list[Any] = [first]
    try:
        wait_for(lambda: first.said("Leading (Lease"), timeout=60, what="the first replica leading")
        second = Replica(env)
        replicas.append(second)
        wait_for(lambda: second.said("Waiting for the Lease"), timeout=60, what="the second replica waiting")
        leader_name = holder(kube)
        assert leader_name.endswith(f"-{first.process.pid}")
        time.sleep(4)  # longer than the lease: the second replica keeps waiting while the first renews
        assert not second.said("Leading (Lease")
        first.process.kill()  # the leader stops without a word (its node is lost)
        wait_for(lambda: second.said("Leading (Lease"), timeout=60, what="the second replica leading")
        assert holder(kube).endswith(f"-{second.process.pid}")
        # Stopped as Kubernetes stops a pod, the leader stops at once and gives the Lease up.
        started = time.monotonic()
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(10) == 0
        assert time.monotonic() - started < 5
        assert holder(kube) == ""
    finally:
        for replica in replicas:
            replica.stop()
