"""Stopping the watcher: SIGTERM (how Kubernetes stops a pod) ends ``watch_cluster`` within 2 s.

Against the real API server, whose watch streams stay open for minutes: the streams are cut
when the watcher stops, and a diagnosis in progress stops between its batches.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dashboard.cluster import sync as sync_module
from dashboard.cluster.sync import ClusterSync, Watcher
from tests.kubeapi import KubeApi

from .conftest import FAST, lab_source, wait_for

ROOT = Path(__file__).resolve().parents[3]


def watcher_process(kube: KubeApi, tmp_path: Path) -> tuple[subprocess.Popen[str], Path, list[str]]:
    """``manage.py watch_cluster`` on the lab cluster, in a process and a database of its own."""
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
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "watch_cluster"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        lines.extend(line.rstrip() for line in process.stdout)

    threading.Thread(target=read, daemon=True).start()
    return process, tmp_path / "var" / "db.sqlite3", lines


def source_state(database: Path) -> str:
    try:
        with sqlite3.connect(database, timeout=5) as db:
            row = db.execute("SELECT state FROM dashboard_sourcestate").fetchone()
    except sqlite3.Error:
        return ""
    return str(row[0]) if row else ""


def stop_took(process: subprocess.Popen[str]) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    return time.monotonic() - started


def test_sigterm_stops_a_synced_watcher_within_two_seconds(kube: KubeApi, tmp_path: Path) -> None:
    process, database, lines = watcher_process(kube, tmp_path)
    wait_for(lambda: source_state(database) == "connected", timeout=60, what="the watcher connected")
    time.sleep(0.5)  # every watch stream open and waiting
    assert stop_took(process) < 2.0
    wait_for(lambda: any("Stopped watching." in line for line in lines), timeout=5, what="the last words")
    assert source_state(database) == "stopped"


def test_sigterm_during_the_start_stops_within_two_seconds(kube: KubeApi, tmp_path: Path) -> None:
    process, _, lines = watcher_process(kube, tmp_path)
    wait_for(lambda: any(line.startswith("Watching") for line in lines), timeout=60, what="the watcher starting")
    assert stop_took(process) < 2.0


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
