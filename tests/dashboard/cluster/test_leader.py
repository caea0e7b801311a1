"""Two watcher replicas with leader election against the real API server: stopping the leader hands over."""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from dashboard.cluster.leader import Election
from tests.kubeapi import ApiError, KubeApi

from .conftest import Replica, wait_for, watcher_env

LEASE = ("windows-node-doctor", "node-doctor-watcher")


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
    with contextlib.suppress(ApiError):
        kube.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{LEASE[0]}/leases/{LEASE[1]}")
    env = watcher_env(kube, tmp_path, WND_WATCHER_LEASE="/".join(LEASE), WND_WATCHER_LEASE_SECONDS="3")
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
