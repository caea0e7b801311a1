"""Diagnosis of stored reports: the rolling log tails and their incrementally kept matches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dashboard.diagnosis import check_node
from dashboard.models import LogTail, Node, Report, enroll
from dashboard.snapshots import stored_snapshot
from diagnostics.logs import scan_matches, scan_text
from tests.dashboard.reports import make_report

pytestmark = pytest.mark.django_db

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "logs"
SANDBOX_ERROR = (LOGS / "kubelet-subnet-env.log").read_text().splitlines(keepends=True)[1]
NOISE = 'I1124 10:15:33.000001    4242 kubelet.go:2337] "Starting kubelet main sync loop"\r\n'


def store(node: Node, logs: dict[str, str], *, rotated: bool = False) -> Report:
    document = make_report(logs=logs)
    for log in document["logs"].values():
        log["rotated"] = rotated
    return Report.objects.create(
        node=node, collected_at="2026-11-24T10:15:40Z", payload=Report.pack(json.dumps(document).encode())
    )


def test_the_kept_log_matches_equal_a_full_scan_of_the_trimmed_tail_after_each_report(settings: Any) -> None:
    settings.WND_LOG_TAIL_BYTES = 2048
    node, _token = enroll("prod-eu", "win-node-01")
    pieces = [NOISE * 3 + SANDBOX_ERROR[:40], SANDBOX_ERROR[40:] + NOISE, SANDBOX_ERROR * 2, NOISE * 12, NOISE * 3]
    counts = []
    for piece in pieces:
        store(node, {"kubelet": piece})
        assert check_node(node.pk)
        tail = LogTail.objects.get(node=node, kind="kubelet")
        assert len(tail.text) <= 2048
        assert [tuple(m) for m in tail.matches] == scan_matches(tail.text, kind="kubelet")
        expected = list(scan_text(tail.text, source=tail.path, kind="kubelet"))
        snap = stored_snapshot(node)
        assert snap is not None and list(snap.log_hits) == expected
        counts.append(len(expected))
    assert counts == [0, 1, 3, 2, 2]  # the line sent in two parts, two more, then the first one trimmed away


def test_a_tail_stored_without_matches_is_scanned_whole_once(settings: Any) -> None:
    node, _token = enroll("prod-eu", "win-node-01")
    LogTail.objects.create(node=node, kind="kubelet", path="C:\\k\\kubelet.log", text=SANDBOX_ERROR)
    store(node, {"kubelet": NOISE})

    assert check_node(node.pk)

    tail = LogTail.objects.get(node=node, kind="kubelet")
    assert tail.text == SANDBOX_ERROR + NOISE
    assert [(m[0], m[1]) for m in tail.matches] == [("flannel.subnet-env-missing", 1)]


def test_a_rotated_log_starts_its_tail_and_its_matches_afresh() -> None:
    node, _token = enroll("prod-eu", "win-node-01")
    store(node, {"kubelet": SANDBOX_ERROR})
    assert check_node(node.pk)
    store(node, {"kubelet": NOISE}, rotated=True)

    assert check_node(node.pk)

    tail = LogTail.objects.get(node=node, kind="kubelet")
    assert (tail.text, tail.matches) == (NOISE, [])


def test_a_run_on_demand_waits_for_nothing_when_the_agent_is_offline(db: Any) -> None:
    from dashboard.diagnosis import ask_for_fresh_report
    from dashboard.models import enroll

    node, _token = enroll("prod-eu", "win-offline")
    assert ask_for_fresh_report(node) is False


def test_reports_that_waited_are_checked_together_keeping_every_log_line() -> None:
    node, _token = enroll("prod-eu", "win-node-01")
    store(node, {"kubelet": NOISE})
    store(node, {"kubelet": SANDBOX_ERROR})
    newest = store(node, {"kubelet": NOISE})

    assert check_node(node.pk)

    node.refresh_from_db()
    assert node.last_diagnosed_report_id == newest.pk
    tail = LogTail.objects.get(node=node, kind="kubelet")
    assert tail.text == NOISE + SANDBOX_ERROR + NOISE
    assert [m[0] for m in tail.matches] == ["flannel.subnet-env-missing"]  # the middle report's line
    assert not check_node(node.pk)  # nothing left to check


def test_a_check_that_dies_halfway_leaves_everything_to_the_task_delivered_again(monkeypatch: Any) -> None:
    from dashboard import diagnosis

    node, _token = enroll("prod-eu", "win-node-01")
    store(node, {"kubelet": SANDBOX_ERROR})

    def killed(*_args: Any, **_kwargs: Any) -> Any:
        raise SystemExit("the worker was killed")  # what the worker's process sees, halfway through

    monkeypatch.setattr(diagnosis, "run_iter", killed)
    with pytest.raises(SystemExit):
        check_node(node.pk)
    node.refresh_from_db()
    assert node.last_diagnosed_report_id == 0 and not LogTail.objects.filter(node=node).exists()

    monkeypatch.undo()
    assert check_node(node.pk)  # the same task, delivered again, does the whole work
    node.refresh_from_db()
    assert node.last_diagnosed_report_id > 0 and node.health == "ok"
    assert LogTail.objects.get(node=node, kind="kubelet").text == SANDBOX_ERROR


def test_a_check_overtaken_by_another_starts_again_and_applies_no_line_twice(monkeypatch: Any) -> None:
    from dashboard import diagnosis

    node, _token = enroll("prod-eu", "win-node-01")
    store(node, {"kubelet": SANDBOX_ERROR})
    real_run_iter = diagnosis.run_iter
    overtaken = []

    def another_worker_first(*args: Any, **kwargs: Any) -> Any:
        if not overtaken:  # while this check runs its checks, another check of the node commits
            overtaken.append(True)
            assert check_node(node.pk)
        return real_run_iter(*args, **kwargs)

    monkeypatch.setattr(diagnosis, "run_iter", another_worker_first)
    assert not check_node(node.pk)  # started again: the other one had done it all

    assert LogTail.objects.get(node=node, kind="kubelet").text == SANDBOX_ERROR
