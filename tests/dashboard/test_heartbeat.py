"""File heartbeats: the liveness probe of the cluster watcher."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dashboard.server import heartbeat


@pytest.fixture(autouse=True)
def beats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WND_HEARTBEAT_DIR", str(tmp_path))
    heartbeat._last.clear()
    return tmp_path


def test_a_loop_that_beats_passes_the_probe() -> None:
    heartbeat.beat("watcher")
    assert heartbeat.main(["watcher", "--max-age", "60"]) == 0


def test_a_loop_that_never_beat_fails_the_probe(capsys: pytest.CaptureFixture[str]) -> None:
    assert heartbeat.main(["watcher"]) == 1
    assert "watcher: no heartbeat" in capsys.readouterr().err


def test_a_stuck_loop_fails_the_probe(beats: Path, capsys: pytest.CaptureFixture[str]) -> None:
    heartbeat.beat("watcher")
    old = time.time() - 600
    os.utime(beats / "watcher", (old, old))
    assert heartbeat.main(["watcher", "--max-age", "120"]) == 1
    assert "last heartbeat 600 s ago (limit 120 s)" in capsys.readouterr().err


def test_beats_are_written_at_most_once_per_interval(beats: Path) -> None:
    heartbeat.beat("watcher", now=100.0)
    old = time.time() - 600
    os.utime(beats / "watcher", (old, old))
    heartbeat.beat("watcher", now=101.0)  # within the interval: no write
    assert heartbeat.age("watcher") > 500  # type: ignore[operator]
    heartbeat.beat("watcher", now=100.0 + heartbeat.MIN_INTERVAL)
    assert heartbeat.age("watcher") < 60  # type: ignore[operator]
