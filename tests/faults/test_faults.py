"""Faults on the real stack: Redis and a worker killed (SIGKILL) while reports flow.

Afterwards every report sent is stored, diagnosed exactly once (its log line is in the
node's log tail exactly once) and none is owed. Longer runs: ``bench/bench_faults.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dashboard.models import Report, enroll
from tests.faults.harness import (
    FaultAgent,
    FaultStack,
    LiveWatcher,
    count,
    hns_endpoints,
    settled,
    wait_until,
)
from tests.integration.live import session_cookie

pytestmark = pytest.mark.integration


def agent_for(faults: FaultStack, tmp_path: Path) -> tuple[object, FaultAgent]:
    node, token = enroll("faults", "win-faults-01")
    return node, FaultAgent(faults.url, token, "faults", "win-faults-01", tmp_path / "agent")


def test_reports_sent_while_redis_is_down_are_all_diagnosed_once_when_it_is_back(
    faults: FaultStack, tmp_path: Path
) -> None:
    node, agent = agent_for(faults, tmp_path)
    for _ in range(3):
        agent.queue_report()
    agent.deliver(30)
    # Every task of those reports finished too: one still prefetched by the worker would claim
    # the next reports of the node (checks of one node are coalesced) while Redis is down.
    wait_until(lambda: settled(node) and faults.broker_idle(), 60, "the first reports to be diagnosed")

    faults.kill("redis")  # without its append-only file: the queue is lost with it
    for _ in range(4):
        agent.queue_report()
    agent.deliver(30)  # accepted (202) although their diagnosis could not be queued
    assert Report.objects.filter(node=node, diagnosed_at__isnull=True).count() == 4

    faults.start_redis()
    for _ in range(2):
        agent.queue_report()
    agent.deliver(30)
    wait_until(lambda: settled(node), 90, "the sweeper to have every owed report diagnosed")

    counts = count(node, [agent])
    assert (counts.sent, counts.stored, counts.diagnosed) == (9, 9, 9)
    assert (counts.lost, counts.log_lines_missing, counts.log_lines_duplicated) == (0, 0, 0)
    assert counts.rejected == 0


def test_a_worker_killed_in_the_middle_of_diagnoses_leaves_nothing_stuck_lost_or_doubled(
    faults: FaultStack, tmp_path: Path
) -> None:
    node, agent = agent_for(faults, tmp_path)
    heavy = hns_endpoints(400)
    for _ in range(6):
        agent.queue_report(probes=heavy)
    agent.deliver(60)
    wait_until(lambda: Report.objects.filter(node=node, diagnosed_at__isnull=False).exists(), 60, "a first diagnosis")
    # Reports that wait are checked together, so the first wave may all be done by now: a second
    # wave is delivered and the worker killed while its check runs.
    for _ in range(6):
        agent.queue_report(probes=heavy)
    agent.deliver(60)
    faults.kill("worker")
    owed = Report.objects.filter(node=node, diagnosed_at__isnull=True).count()
    assert owed > 0, "the worker was killed after it had finished: nothing was in flight"

    faults.start_worker()  # it queues every owed report again as it starts
    wait_until(lambda: settled(node), 120, "every report to be diagnosed after the restart")

    counts = count(node, [agent])
    assert (counts.sent, counts.stored, counts.diagnosed) == (12, 12, 12)
    assert (counts.lost, counts.log_lines_missing, counts.log_lines_duplicated) == (0, 0, 0)


def test_a_node_page_shows_new_diagnoses_again_after_redis_restarts_empty(
    faults: FaultStack, tmp_path: Path, django_user_model: Any
) -> None:
    node, agent = agent_for(faults, tmp_path)
    agent.queue_report()
    agent.deliver(30)
    wait_until(lambda: settled(node), 60, "the first report to be diagnosed")
    cookie = session_cookie(django_user_model.objects.create_user("watcher"))
    watcher = LiveWatcher(faults.url, f"/ws/clusters/faults/nodes/{node.name}/", cookie)
    try:
        wait_until(lambda: bool(watcher.seen), 30, "the page's first frame")
        faults.kill("redis")
        faults.start_redis()  # empty: the live sequence numbers start again, in a new epoch
        restarted = time.monotonic()
        agent.queue_report()
        agent.deliver(30)
        newest = Report.objects.filter(node=node).order_by("-pk").values_list("pk", flat=True).first()
        assert newest is not None
        wait_until(
            lambda: watcher.first_showing(newest, restarted) is not None, 60, "a frame showing the new diagnosis"
        )
    finally:
        watcher.stop.set()
