"""Cluster-source fixtures: the lab cluster's API objects (tests/fixtures/cluster), the real API server, a sync.

``kube_server`` is one real kube-apiserver (v1.28.0, etcd, RBAC) for the whole session
(``../shared/kube``); ``kube`` empties it and creates the lab cluster in it for a test;
``lab_kubeconfig`` is a kubeconfig of the dashboard's ServiceAccount, bound by
``deploy/kubernetes/base/dashboard/rbac.yaml`` as shipped, so every test runs with the real permissions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.cluster.simulated import SimulatedSource
from dashboard.cluster.sync import ClusterSync, Timing
from tests.kubeapi import KubeApi

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "cluster"
FAST = Timing(
    backoff_first=0.05,
    backoff_max=0.2,
    settle=0.05,
    cluster_wide_every=0.0,
    state_every=0.0,
    starting_grace=15.0,
)


def api_list(name: str) -> dict[str, Any]:
    """A list response as the API returns it (``nodes``, ``pods``, ``pods-stuck``, ``events`` ...)."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def lab_source(**options: Any) -> SimulatedSource:
    """The lab cluster: Windows Server 2019/2022/2025 nodes, a Linux node, pods with every unsupported field."""
    pods = api_list("pods")["items"] + api_list("pods-stuck")["items"]
    objects = {
        "Node": api_list("nodes")["items"],
        "Pod": pods,
        "Event": api_list("events")["items"],
        "Service": api_list("services")["items"],
        "EndpointSlice": api_list("endpointslices")["items"],
    }
    return SimulatedSource("lab", objects, version="v1.31.1", **options)


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    """A ``ClusterSync`` running in a thread, and the batches it has diagnosed."""

    def __init__(self, sync: ClusterSync) -> None:
        self.sync = sync
        self.flushes: list[Any] = []
        sync.on_flush = self.flushes.append
        self.thread = threading.Thread(target=sync.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sync.stop.set()
        self.thread.join(10)
        # One left running would go on writing and publishing into the tests after this one.
        assert not self.thread.is_alive(), "the sync did not stop within 10 s"

    def settled(self, count: int = 1, timeout: float = 20.0) -> None:
        wait_for(lambda: len(self.flushes) >= count, timeout, f"{count} diagnosed batch(es)")


@pytest.fixture
def run_sync(transactional_db: Any) -> Callable[..., Running]:
    def start(source: Any, **options: Any) -> Running:
        return Running(ClusterSync(source, timing=options.pop("timing", FAST), **options))

    return start


@pytest.fixture(scope="session")
def kube_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    """A real API server for the session (about 4 s to start)."""
    api = KubeApi.start(tmp_path_factory.mktemp("kube-apiserver"))
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kube(kube_server: KubeApi) -> KubeApi:
    """The real API server holding exactly the lab cluster."""
    kube_server.wait_ready()
    kube_server.reset()
    kube_server.load_lab()
    return kube_server


@pytest.fixture
def lab_kubeconfig(kube: KubeApi, tmp_path: Path) -> Path:
    """A kubeconfig of the dashboard's ServiceAccount (deploy/kubernetes/base/dashboard/rbac.yaml), context ``lab``."""
    return kube.kubeconfig_for(tmp_path / "dashboard.kubeconfig", token=kube.dashboard_token(), context="lab")


def sync_now(source: SimulatedSource, *, diagnose: bool = True) -> Any:
    """List every kind into the store at once (no threads), record the version, and diagnose like the sync does."""
    from dashboard.cluster.diagnose import check_all_workloads, recheck_nodes
    from dashboard.cluster.models import SourceState
    from dashboard.cluster.resources import RESOURCES
    from dashboard.cluster.store import Store

    store = Store(source.cluster)
    SourceState.objects.update_or_create(
        cluster=store.cluster, defaults={"state": SourceState.CONNECTED, "server_version": source.server_version()}
    )
    for resource in RESOURCES:
        store.replace(resource, source.list(resource))
    if diagnose:
        check_all_workloads(store.cluster)
        recheck_nodes(store.cluster, sorted(store.windows_nodes))
    return store


def store_report(node: Any, document: dict[str, Any]) -> Any:
    """Store an agent's report as ingest does (the node then has an agent)."""
    from django.utils import timezone

    from dashboard.models import Node, Report

    report = Report.objects.create(
        node=node, collected_at=timezone.now(), payload=Report.pack(json.dumps(document).encode())
    )
    Node.objects.filter(pk=node.pk).update(last_report_at=timezone.now())
    node.refresh_from_db()
    return report


def watcher_env(kube: KubeApi, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of ``manage.py watch_cluster`` processes on the lab cluster, with a migrated
    database of their own in ``tmp_path`` (``settings`` added, e.g. ``WND_WATCHER_LEASE``)."""
    kubeconfig = kube.kubeconfig_for(tmp_path / "dashboard.kubeconfig", token=kube.dashboard_token(), context="lab")
    env = dict(
        os.environ,
        WND_VAR_DIR=str(tmp_path / "var"),
        WND_CLUSTERS="lab",
        WND_CLUSTERS_FILE="",
        WND_KUBECONFIG=str(kubeconfig),
        WND_WATCHER_LEASE="",
        DJANGO_SETTINGS_MODULE="dashboard.settings",
    )
    env.update(settings)
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    return env


class Replica:
    """``manage.py watch_cluster`` in a process of its own (env: ``watcher_env``), its output collected."""

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
