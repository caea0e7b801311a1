"""The sync's own rules, on the simulated source (what a real server cannot be made to do on demand:
fail ``/version`` alone, or answer 403 at a chosen moment)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import pytest

from dashboard.cluster.models import SourceState
from dashboard.cluster.resources import PODS
from dashboard.cluster.simulated import SimulatedSource
from dashboard.cluster.source import Forbidden, Unavailable
from dashboard.cluster.sync import Timing, _Backoff

from .conftest import FAST, lab_source, wait_for


def state() -> SourceState:
    return SourceState.objects.get(cluster__name="lab")


class VersionFails(SimulatedSource):
    """The lab cluster whose ``/version`` fails after the first answer."""

    calls = 0

    def server_version(self) -> str:
        self.calls += 1
        if self.calls > 1:
            raise Unavailable("get the server version: the API server answered 503 Service Unavailable.")
        return super().server_version()


def test_a_failed_version_keeps_the_last_known_one_and_says_so(run_sync: Any) -> None:
    lab = lab_source()
    source = VersionFails("lab", {k: lab.objects(k) for k in ("Node", "Pod", "Event", "Service", "EndpointSlice")})
    source.version = "v1.31.1"
    with run_sync(source, diagnose=False, timing=replace(FAST, version_every=0.1)) as running:
        running.settled()
        wait_for(lambda: "could not be read" in state().message, what="the failure said")
        current = state()
        assert current.server_version == "v1.31.1"
        assert current.state == SourceState.CONNECTED
        assert "showing the last known one, v1.31.1" in current.message


def test_the_version_is_asked_again_periodically(run_sync: Any) -> None:
    source = lab_source()
    with run_sync(source, diagnose=False, timing=replace(FAST, version_every=0.1)) as running:
        running.settled()
        assert state().server_version == "v1.31.1"
        source.version = "v1.32.0"  # the control plane was upgraded; no watch noticed
        wait_for(lambda: state().server_version == "v1.32.0", what="the new version")


def test_a_403_right_after_the_server_was_away_is_shown_as_starting_until_it_persists(run_sync: Any) -> None:
    source = lab_source()
    with run_sync(source, diagnose=False, timing=replace(FAST, starting_grace=1.0)) as running:
        running.settled()
        source.fail(Unavailable("cannot reach the API server at https://127.0.0.1:6443: connection refused"))
        wait_for(lambda: state().state == SourceState.ERROR, what="the error")
        source.fail(Forbidden(PODS, "list", 'pods is forbidden: User "x" cannot list resource "pods"'))
        wait_for(lambda: "The API server is starting" in state().message, what="starting")
        assert "Grant '" not in state().message
        wait_for(lambda: "Grant 'list' on 'pods'" in state().message, what="the permission, once it persists")
        source.recover()
        wait_for(lambda: state().state == SourceState.CONNECTED, what="connected")


def test_retries_are_capped_at_30_seconds_with_jitter_and_logged_once_per_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backoff = _Backoff(Timing(), "lab")
    error = Unavailable("cannot reach the API server at https://127.0.0.1:6443: connection refused")
    waits = []
    with caplog.at_level(logging.WARNING, logger="dashboard.cluster.sync"):
        for _ in range(12):
            backoff.next_try = 0.0  # the previous step is over
            backoff.failed(error)
            now = time.monotonic()
            for _kind in range(4):  # the other kinds fail within the same step
                backoff.failed(error)
            waits.append(backoff.next_try - now)
    assert len(caplog.records) == 12  # one line per step, not one per kind
    assert all(w <= 30.0 for w in waits)
    assert min(waits[-4:]) >= 14.9  # at the cap, jittered between 15 and 30 s
    assert len({round(w, 3) for w in waits[-4:]}) > 1
    assert "Retrying in" in caplog.records[0].getMessage()
    backoff.succeeded()
    assert backoff.next_try == 0.0  # the others try again at once
