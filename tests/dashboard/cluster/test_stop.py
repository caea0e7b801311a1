"""Stopping the watcher: SIGTERM (how Kubernetes stops a pod) ends ``watch_cluster`` within 2 s.

Against the real API server, whose watch streams stay open for minutes: the streams are cut
when the watcher stops, and a diagnosis in progress stops between its batches.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from dashboard.cluster import sync as sync_module
from dashboard.cluster.sync import ClusterSync, Watcher
from tests.kubeapi import KubeApi

from .conftest import FAST, Replica, lab_source, wait_for, watcher_env


def source_state(database: Path) -> str:
    try:
        with sqlite3.connect(database, timeout=5) as db:
            row = db.execute("SELECT state FROM dashboard_sourcestate").fetchone()
    except sqlite3.Error:
        return ""
    return str(row[0]) if row else ""


def stop_took(watcher: Replica) -> float:
    """Seconds from SIGTERM to the process's exit, which must be a clean one."""
    started = time.monotonic()
    watcher.stop()
    assert watcher.process.returncode == 0
    return time.monotonic() - started


def test_sigterm_stops_a_synced_watcher_within_two_seconds(kube: KubeApi, tmp_path: Path) -> None:
    watcher = Replica(watcher_env(kube, tmp_path))
    database = tmp_path / "var" / "db.sqlite3"
    wait_for(lambda: source_state(database) == "connected", timeout=60, what="the watcher connected")
    time.sleep(0.5)  # every watch stream open and waiting
    assert stop_took(watcher) < 2.0
    wait_for(lambda: watcher.said("Stopped watching."), timeout=5, what="the last words")
    assert source_state(database) == "stopped"


def test_sigterm_during_the_start_stops_within_two_seconds(kube: KubeApi, tmp_path: Path) -> None:
    watcher = Replica(watcher_env(kube, tmp_path))
    wait_for(lambda: watcher.said("Watching"), timeout=60, what="the watcher starting")
    assert stop_took(watcher) < 2.0


def test_a_diagnosis_in_batches_stops_between_them(monkeypatch: Any, db: Any) -> None:
    """A thousand nodes are diagnosed a hundred at a time; a stop ends it after the batch in progress."""
    sync = ClusterSync(lab_source(), timing=FAST)
    sync.store = sync_module.Store("lab")
    batches: list[list[str]] = []

    def recheck(cluster: Any, names: list[str], **options: Any) -> int:
        batches.append(names)
        sync.stop.set()  # the watcher is told to stop while this batch is diagnosed
        return 0

    monkeypatch.setattr(sync_module, "recheck_nodes", recheck)
    sync._recheck({f"win-{i:04d}" for i in range(1000)})
    assert len(batches) == 1 and len(batches[0]) == sync_module.NODES_PER_BATCH


def test_closing_the_watcher_cuts_the_streams_at_once(monkeypatch: Any) -> None:
    """``Watcher.close`` cuts every source's streams itself, before any cluster's writer gets to it."""
    closed: list[str] = []
    source = lab_source()
    monkeypatch.setattr(source, "close", lambda: closed.append(source.cluster))
    watcher = Watcher([ClusterSync(source, timing=FAST)])  # not started: only the stop is looked at
    watcher.close(timeout=0.1)
    assert closed == ["lab"] and watcher.stop.is_set()
