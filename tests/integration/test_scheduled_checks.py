"""Scheduled checks for real: Redis, a Celery worker, Celery beat (database scheduler), a scenario agent,
and a webhook receiver on 127.0.0.1. A fault opens one finding and one message; its fix resolves it and
sends exactly one more, however many reports and scheduled runs see it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard import schedules
from dashboard.models import Finding, enroll
from dashboard.monitoring import Delivery, FindingEvent, NotificationChannel, Schedule, ScheduleRun
from tests.receiver import Receiver, receiving
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).resolve().parents[2] / "agent" / "scenarios" / "subnet-env-missing"
SUBNET = "flannel.subnet-env-missing"


@pytest.fixture
def beat_stack(transactional_db: Any) -> Iterator[Stack]:
    # A small log tail: the error lines of the fault scroll out of it at the first cycle after the fix,
    # so the log-based evidence of the check stops with the fault (by default it stays for 128 KB of log).
    env = {"WND_SCHEDULE_COLLECT_WAIT": "3", "WND_LOG_TAIL_BYTES": "1024"}
    with running_stack(beat=True, env=env) as running:
        yield running


def wait_until(what: str, condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    runs = list(ScheduleRun.objects.values_list("state", "nodes_done", "nodes_asked", "nodes_fresh", "message"))
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; runs: {runs[:5]}")


def set_variant(scenario: Path, variant: str | None) -> None:
    doc = json.loads(scenario.read_text())
    doc["variant"] = variant
    tmp = scenario.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(scenario)  # atomic: the agent re-reads the file every cycle


def subnet_messages(receiver: Receiver) -> list[str]:
    return [b["event"] for b in receiver.bodies() if (b.get("finding") or {}).get("check") == SUBNET]


def test_a_scheduled_fault_and_its_fix_each_send_exactly_one_webhook(beat_stack: Stack, tmp_path: Path) -> None:
    scenario_dir = tmp_path / "scenario"
    shutil.copytree(SCENARIO, scenario_dir)
    scenario = scenario_dir / "scenario.json"
    set_variant(scenario, "fixed")
    _node, token = enroll("prod-eu", "win-prod-02")
    Schedule.objects.update(enabled=False)
    for existing in Schedule.objects.all():
        schedules.sync_periodic_task(existing)
    schedule = Schedule.objects.create(name="every 2 s", interval_seconds=2, nodes="names", node_names="win-prod-02")
    schedules.sync_periodic_task(schedule)

    with receiving() as receiver:
        NotificationChannel.objects.create(name="ops", kind="webhook", target=receiver.url, min_severity="critical")
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "--scenario", str(scenario), "--dashboard", beat_stack.url,
             "--token", token, "--interval", "1", "--state-dir", str(tmp_path / "state")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            # 1. Healthy: beat runs the schedule, which asks the connected agent for fresh data.
            wait_until(
                "a scheduled run that asked the agent for a report",
                lambda: ScheduleRun.objects.filter(schedule=schedule, state="ok", nodes_done=1, nodes_fresh=1).exists(),
                timeout=120,  # the first tick waits for beat and the worker to start on a busy machine
            )
            assert not Finding.objects.filter(check_id=SUBNET).exists()

            # 2. The fault: one finding, one webhook.
            set_variant(scenario, None)
            wait_until(
                "the finding to open", lambda: Finding.objects.filter(check_id=SUBNET, resolved_at=None).exists()
            )
            receiver.wait_for(1)
            runs_before = ScheduleRun.objects.filter(schedule=schedule, state="ok").count()
            wait_until(
                "two more scheduled runs while the fault persists",
                lambda: ScheduleRun.objects.filter(schedule=schedule, state="ok").count() >= runs_before + 2,
            )
            assert subnet_messages(receiver) == ["finding.opened"]
            finding = Finding.objects.get(check_id=SUBNET)
            assert finding.seen_count >= 3  # seen by reports and runs, told once

            # 3. The fix: resolved, exactly one more webhook.
            set_variant(scenario, "fixed")
            wait_until(
                "the finding to resolve", lambda: Finding.objects.filter(check_id=SUBNET, resolved_at=None).count() == 0
            )
            wait_until("the resolution webhook", lambda: len(subnet_messages(receiver)) >= 2)
            runs_before = ScheduleRun.objects.filter(schedule=schedule, state="ok").count()
            wait_until(
                "two more scheduled runs after the fix",
                lambda: ScheduleRun.objects.filter(schedule=schedule, state="ok").count() >= runs_before + 2,
            )
            assert subnet_messages(receiver) == ["finding.opened", "finding.resolved"]
        finally:
            agent.terminate()
            agent.wait(10)

        # Every message matches one delivery of one transition: nothing was sent twice.
        delivery_ids = [b["delivery"] for b in receiver.bodies()]
        assert len(delivery_ids) == len(set(delivery_ids))
        critical_transitions = FindingEvent.objects.filter(
            kind__in=FindingEvent.TRANSITIONS, finding__severity="critical", finding__status="fail"
        ).count()
        assert Delivery.objects.filter(state="sent").count() == critical_transitions == len(delivery_ids)

    runs = list(ScheduleRun.objects.filter(schedule=schedule))
    assert all(r.state in ("ok", "skipped") for r in runs)
    assert all(r.duration_seconds is not None for r in runs)
