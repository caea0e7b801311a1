"""Scheduled checks: which nodes and checks a ``Schedule`` covers, its beat entry, and one run.

A run (``run_schedule``), in order:

1. Recover: a previous run whose heartbeat is older than ``WND_SCHEDULE_RUN_LEASE`` lost
   its worker; it is marked ``interrupted`` and the schedule released.
2. Claim the schedule with one conditional UPDATE. If a run still holds it, record a
   ``skipped`` run and stop: runs never pile up.
3. Ask every connected agent of the target nodes for fresh data (``collect-now``) and wait
   up to ``WND_SCHEDULE_COLLECT_WAIT`` seconds for their reports.
4. Run the checks on each node's latest report, in chunks. The checks run outside any
   transaction; each chunk's findings are then stored in one transaction
   (``diagnosis.store_findings``), so a worker killed mid-run leaves every node either fully
   updated or untouched.
5. Finish the run (duration, counts, outcome) and release the schedule.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from dashboard import live, queue
from dashboard.cluster.models import ApiObject
from dashboard.diagnosis import store_findings
from dashboard.models import Node, Report
from dashboard.monitoring import Schedule, ScheduleRun
from dashboard.selectors import parse_selector
from dashboard.snapshots import stored_snapshots
from diagnostics.registry import all_checks, run_iter

log = logging.getLogger(__name__)

RUN_TASK = queue.RUN_SCHEDULE
MAINTENANCE_TASK = "dashboard.maintenance"
MAINTENANCE_NAME = "wnd maintenance"
MAINTENANCE_EVERY = 30  # seconds: stale agents, silence expiry, notification retries, run recovery
DEFAULT_NAME = "Every Windows node, all checks"
DEFAULT_EVERY = 15 * 60
CHUNK = 100
RUNS_KEPT = 200


# -- what a schedule covers ---------------------------------------------------


def resolve_checks(tokens: Iterable[str]) -> set[str]:
    """The check ids named by ``tokens`` (ids or areas). Raises ``ValueError`` naming unknown ones."""
    specs = all_checks()
    areas = {spec.area for spec in specs.values()}
    wanted = set(tokens)
    unknown = sorted(t for t in wanted if t not in specs and t not in areas)
    if unknown:
        raise ValueError(f"unknown check id or area: {', '.join(unknown)}")
    return {cid for cid, spec in specs.items() if cid in wanted or spec.area in wanted}


def checks_of(schedule: Schedule) -> set[str]:
    """The ids a run of this schedule runs (all the engine's checks when none are chosen)."""
    return resolve_checks(schedule.check_ids) if schedule.check_ids else set(all_checks())


def parse_node_names(text: str) -> list[tuple[str, str]]:
    """``node`` or ``cluster/node`` per line (or separated by spaces); cluster "" means any."""
    names = []
    for token in text.replace(",", " ").split():
        cluster, _, name = token.rpartition("/")
        names.append((cluster, name))
    return names


def target_node_ids(schedule: Schedule) -> list[int]:
    """The ids of the nodes this schedule covers, in a stable order."""
    nodes = Node.objects.all()
    if schedule.nodes == Schedule.NODES_NAMES:
        query = Q(pk__in=[])
        for cluster, name in parse_node_names(schedule.node_names):
            query |= Q(name=name, cluster__name=cluster) if cluster else Q(name=name)
        nodes = nodes.filter(query)
    elif schedule.nodes == Schedule.NODES_SELECTOR:
        selector = parse_selector(schedule.label_selector)
        keys = {
            (cluster_id, name)
            for cluster_id, name, data in ApiObject.objects.filter(kind="Node", windows=True).values_list(
                "cluster_id", "name", "data"
            )
            if selector.matches(((data or {}).get("metadata") or {}).get("labels") or {})
        }
        rows = nodes.order_by("pk").values_list("pk", "cluster_id", "name")
        return [pk for pk, cluster_id, name in rows if (cluster_id, name) in keys]
    return list(nodes.order_by("pk").values_list("pk", flat=True))


def validate_cron(expression: str) -> tuple[str, str, str, str, str]:
    """Five cron fields (minute hour day-of-month month day-of-week); ``ValueError`` if not valid."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("a cron expression has five fields: minute hour day-of-month month day-of-week")
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{expression!r} is not a valid cron expression: {exc}") from None
    return minute, hour, day_of_month, month, day_of_week


# -- the beat entry -----------------------------------------------------------


def sync_periodic_task(schedule: Schedule) -> PeriodicTask:
    """Create or update the beat entry that runs ``schedule`` (call after every change)."""
    interval = crontab_row = None
    if schedule.cron:
        minute, hour, dom, month, dow = validate_cron(schedule.cron)
        crontab_row, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow, timezone="UTC"
        )
    else:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=max(1, schedule.interval_seconds or DEFAULT_EVERY), period=IntervalSchedule.SECONDS
        )
    task = schedule.periodic_task or PeriodicTask(name=f"wnd schedule {schedule.pk}", task=RUN_TASK)
    task.args = json.dumps([schedule.pk])
    task.kwargs = "{}"
    task.interval, task.crontab = interval, crontab_row
    task.enabled = schedule.enabled
    task.description = f"Windows Node Doctor schedule {schedule.name!r}"
    task.save()  # django-celery-beat's signal tells the beat process its schedule changed
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        Schedule.objects.filter(pk=schedule.pk).update(periodic_task=task)
    return task


def delete_schedule(schedule: Schedule) -> None:
    with transaction.atomic():
        if schedule.periodic_task is not None:
            schedule.periodic_task.delete()
        schedule.delete()


def ensure_defaults(**_kwargs: Any) -> None:
    """After ``migrate``: the maintenance task, and a default schedule when there is none."""
    interval, _ = IntervalSchedule.objects.get_or_create(every=MAINTENANCE_EVERY, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.get_or_create(
        name=MAINTENANCE_NAME,
        defaults={
            "task": MAINTENANCE_TASK,
            "interval": interval,
            "description": "Stale agents, silence expiry, notification retries, interrupted runs",
        },
    )
    if not Schedule.objects.exists():
        schedule = Schedule.objects.create(name=DEFAULT_NAME, interval_seconds=DEFAULT_EVERY)
        sync_periodic_task(schedule)


# -- one run ------------------------------------------------------------------


@dataclass
class Tally:
    done: int = 0
    failed: int = 0
    opened: int = 0
    resolved: int = 0
    no_report: int = 0


def recover(schedule_id: int, now: datetime) -> int:
    """Mark runs whose worker died as interrupted and release their schedule; return how many."""
    lease = timedelta(seconds=settings.WND_SCHEDULE_RUN_LEASE)
    stale = ScheduleRun.objects.filter(schedule_id=schedule_id, state=ScheduleRun.RUNNING, heartbeat_at__lt=now - lease)
    count = stale.update(
        state=ScheduleRun.INTERRUPTED,
        finished_at=now,
        message="Its worker stopped before the run finished; nodes it had not written were left as they were.",
    )
    if not ScheduleRun.objects.filter(schedule_id=schedule_id, state=ScheduleRun.RUNNING).exists():
        Schedule.objects.filter(pk=schedule_id, running_since__isnull=False).update(running_since=None)
    return count


def recover_all(now: datetime | None = None) -> int:
    now = now or timezone.now()
    ids = set(ScheduleRun.objects.filter(state=ScheduleRun.RUNNING).values_list("schedule_id", flat=True))
    ids |= set(Schedule.objects.filter(running_since__isnull=False).values_list("pk", flat=True))
    return sum(recover(pk, now) for pk in ids)


def run_schedule(schedule_id: int, *, trigger: str = ScheduleRun.TRIGGER_BEAT) -> ScheduleRun | None:
    """Run a schedule once (see the module's steps); return its run, or None for an unknown schedule."""
    schedule = Schedule.objects.filter(pk=schedule_id).first()
    if schedule is None:
        return None
    now = timezone.now()
    recover(schedule.pk, now)
    claimed = Schedule.objects.filter(pk=schedule.pk, running_since__isnull=True).update(running_since=now)
    if not claimed:
        running = ScheduleRun.objects.filter(schedule=schedule, state=ScheduleRun.RUNNING).first()
        since = f" (run {running.pk}, started {running.started_at:%H:%M:%S} UTC)" if running else ""
        return ScheduleRun.objects.create(
            schedule=schedule,
            trigger=trigger,
            state=ScheduleRun.SKIPPED,
            started_at=now,
            finished_at=now,
            message=f"Skipped: the previous run{since} is still going.",
        )
    run = ScheduleRun.objects.create(schedule=schedule, trigger=trigger, started_at=now, heartbeat_at=now)
    try:
        _execute(schedule, run)
    except Exception as exc:
        log.exception("schedule %s failed", schedule)
        run.state = ScheduleRun.FAILED
        run.message = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        run.finished_at = timezone.now()
        run.heartbeat_at = run.finished_at
        run.save()
        Schedule.objects.filter(pk=schedule.pk, running_since=now).update(running_since=None)
    _prune_runs(schedule)
    return run


def _execute(schedule: Schedule, run: ScheduleRun) -> None:
    only = checks_of(schedule)
    node_ids = target_node_ids(schedule)
    run.nodes_total = len(node_ids)
    run.save(update_fields=["nodes_total"])
    _collect_fresh(schedule, run, node_ids)
    tally = Tally()
    for start in range(0, len(node_ids), CHUNK):
        _run_chunk(node_ids[start : start + CHUNK], only, tally)
        run.nodes_done, run.heartbeat_at = tally.done + tally.no_report, timezone.now()
        ScheduleRun.objects.filter(pk=run.pk).update(nodes_done=run.nodes_done, heartbeat_at=run.heartbeat_at)
    run.nodes_failed, run.findings_opened, run.findings_resolved = tally.failed, tally.opened, tally.resolved
    run.state = ScheduleRun.FAILED if tally.failed and not tally.done else ScheduleRun.OK
    parts = [f"{tally.done} node{'s' if tally.done != 1 else ''} checked with {len(only)} checks"]
    if tally.no_report:
        parts.append(f"{tally.no_report} without a report yet")
    if tally.failed:
        parts.append(f"{tally.failed} could not be read")
    parts.append(f"{tally.opened} opened, {tally.resolved} resolved")
    run.message = "; ".join(parts) + "."


def _collect_fresh(schedule: Schedule, run: ScheduleRun, node_ids: list[int]) -> None:
    """Ask the connected agents for a report now, then wait (bounded) for them to arrive."""
    from agent.protocol import RequestError
    from dashboard import agents

    if not node_ids:
        return
    pipe = live.redis_client().pipeline(transaction=False)
    for pk in node_ids:
        pipe.exists(agents._online_key(pk))
    online = [pk for pk, up in zip(node_ids, pipe.execute(), strict=True) if up]
    if not online:
        return
    asked_at = timezone.now()
    asked = []
    for node in Node.objects.select_related("cluster").filter(pk__in=online):
        try:
            record = agents.send_request(node, "collect-now", {}, user=f"schedule {schedule.name}")
        except RequestError:
            continue
        if record["state"] != "error":
            asked.append(node.pk)
    run.nodes_asked = len(asked)
    deadline = time.monotonic() + settings.WND_SCHEDULE_COLLECT_WAIT
    fresh = 0
    while asked:
        fresh = Node.objects.filter(pk__in=asked, last_report_at__gte=asked_at).count()
        if fresh >= len(asked) or time.monotonic() >= deadline:
            break
        ScheduleRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
        time.sleep(0.25)
    run.nodes_fresh = fresh
    run.save(update_fields=["nodes_asked", "nodes_fresh"])


def _run_chunk(node_ids: list[int], only: set[str], tally: Tally) -> None:
    """Check a chunk of nodes on their latest reports, then store all their findings together.

    The snapshots come from the one builder (``snapshots.stored_snapshots``: kept log matches,
    no rescanning), the findings go through the one store (``diagnosis.store_findings``): a
    constant number of queries per chunk.
    """
    nodes = list(Node.objects.select_related("cluster").filter(pk__in=node_ids, last_report_at__isnull=False))
    tally.no_report += len(node_ids) - len(nodes)  # nodes known only from the API: the cluster source checks them
    with_report = set(Report.objects.filter(node__in=nodes).values_list("node_id", flat=True).distinct())
    tally.no_report += sum(1 for n in nodes if n.pk not in with_report)
    nodes = [n for n in nodes if n.pk in with_report]
    snaps = stored_snapshots(nodes, checks=only)
    checked = {n.pk: n.last_diagnosed_report_id for n in nodes}
    runs = []
    for node in nodes:
        snap = snaps.get(node.pk)
        if snap is None:
            log.warning("the latest report of node %s cannot be read", node)
            tally.failed += 1
            continue
        runs.append((node, list(run_iter(snap, only))))
    if not runs:
        return
    with transaction.atomic():
        # A report checked meanwhile brought fresher findings than these: its node is left as it is.
        now_checked = dict(
            Node.objects.select_for_update(of=("self",))
            .filter(pk__in=[n.pk for n, _ in runs])
            .order_by("pk")
            .values_list("pk", "last_diagnosed_report_id")
        )
        tally.done += len(runs)
        runs = [(n, found) for n, found in runs if now_checked.get(n.pk, 0) <= checked[n.pk]]
        changes = store_findings(runs, only)
    tally.opened += sum(len(c.opened) for c in changes.values())
    tally.resolved += sum(len(c.resolved) for c in changes.values())


def _prune_runs(schedule: Schedule) -> None:
    cutoff = list(schedule.runs.order_by("-id").values_list("id", flat=True)[RUNS_KEPT : RUNS_KEPT + 1])
    if cutoff:
        schedule.runs.filter(id__lte=cutoff[0]).exclude(state=ScheduleRun.RUNNING).delete()


def last_runs(schedules: Iterable[Schedule]) -> dict[int, ScheduleRun]:
    """The latest run of each schedule (two queries whatever their number)."""
    ids = ScheduleRun.objects.filter(schedule__in=list(schedules)).values("schedule_id").annotate(last=Max("id"))
    return {r.schedule_id: r for r in ScheduleRun.objects.filter(pk__in=[row["last"] for row in ids])}
