"""Scheduled checks: which nodes and checks a ``Schedule`` covers, its beat entry, and one run.

A run (``run_schedule``), in order:

1. Recover: a previous run whose heartbeat is older than ``WND_SCHEDULE_RUN_LEASE`` lost
   its worker; it is marked ``interrupted`` and the schedule released.
2. Claim the schedule with one conditional UPDATE. If a run still holds it, record a
   ``skipped`` run and stop: runs never pile up.
3. Ask every connected agent of the target nodes for fresh data (``collect-now``) and wait
   up to ``WND_SCHEDULE_COLLECT_WAIT`` seconds for their reports.
4. Run the checks on each node's latest report, in chunks. The checks run outside any
   transaction; each chunk's findings are then written in one transaction, so a worker
   killed mid-run leaves every node either fully updated or untouched.
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

from dashboard import live
from dashboard.cluster.models import ApiObject
from dashboard.cluster.snapshot import ClusterContext, api_base_snapshot
from dashboard.diagnosis import Changes, reconcile, refresh_summary
from dashboard.models import LogTail, Node, Report
from dashboard.monitoring import Schedule, ScheduleRun
from dashboard.selectors import parse_selector
from diagnostics.model import Finding as EngineFinding
from diagnostics.registry import all_checks, run_iter
from diagnostics.report import ReportError, parse_report, snapshot_from_report

log = logging.getLogger(__name__)

RUN_TASK = "dashboard.run_schedule"
MAINTENANCE_TASK = "dashboard.maintenance"
MAINTENANCE_NAME = "wnd maintenance"
MAINTENANCE_EVERY = 30  # seconds: stale agents, silence expiry, notification retries, run recovery
DEFAULT_NAME = "Every Windows node, all checks"
DEFAULT_EVERY = 15 * 60
CHUNK = 100
RUNS_KEPT = 200
SUMMARY_FIELDS = ["health", "health_rank", "critical_count", "warning_count", "info_count", "unknown_count"]


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
    contexts: dict[int, ClusterContext] = {}  # the API's view of each cluster, loaded once per run
    for start in range(0, len(node_ids), CHUNK):
        _run_chunk(node_ids[start : start + CHUNK], only, tally, contexts)
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


def _run_chunk(node_ids: list[int], only: set[str], tally: Tally, contexts: dict[int, ClusterContext]) -> None:
    """Check a chunk of nodes on their latest reports, then write all their findings in one transaction.

    A constant number of queries per chunk to read, and per node to write.
    """
    nodes = Node.objects.select_related("cluster").in_bulk(node_ids)
    latest = dict(
        Report.objects.filter(node_id__in=node_ids)
        .values("node_id")
        .annotate(last=Max("id"))
        .values_list("node_id", "last")
    )
    reports = {r.pk: r for r in Report.objects.filter(pk__in=list(latest.values()))}
    tails: dict[int, dict[str, tuple[str, str]]] = {}
    for tail in LogTail.objects.filter(node_id__in=node_ids).only("node_id", "kind", "path", "text"):
        tails.setdefault(tail.node_id, {})[tail.kind] = (tail.path, tail.text)
    results: list[tuple[int, int, list[EngineFinding]]] = []
    for node_id in node_ids:
        node, report = nodes.get(node_id), reports.get(latest.get(node_id, 0))
        if node is None or report is None:
            tally.no_report += 1  # a node known only from the API: the cluster source checks it
            continue
        if node.cluster_id not in contexts:
            contexts[node.cluster_id] = ClusterContext.load(node.cluster_id, node.cluster.name)
        try:
            base = api_base_snapshot(node, contexts[node.cluster_id])
            snap = snapshot_from_report(parse_report(report.document()), log_texts=tails.get(node_id, {}), base=base)
        except (ReportError, ValueError, OSError):
            log.warning("report %s of node %s cannot be read", report.pk, node)
            tally.failed += 1
            continue
        results.append((node_id, report.pk, list(run_iter(snap, only))))
    if not results:
        return
    changed: list[Node] = []
    with transaction.atomic():
        locked = Node.objects.select_for_update(of=("self",)).select_related("cluster").in_bulk([r[0] for r in results])
        for node_id, report_id, findings in results:
            node = locked[node_id]
            tally.done += 1
            if node.last_diagnosed_report_id > report_id:
                continue  # a newer report was diagnosed meanwhile: its findings are fresher
            changes = reconcile(node, findings, only)
            _save_summary(node, changes)
            tally.opened += len(changes.opened)
            tally.resolved += len(changes.resolved)
            if changes.any:
                changed.append(node)
        if changed:
            transaction.on_commit(lambda: _publish(changed))


def _save_summary(node: Node, changes: Changes) -> None:
    refresh_summary(node, changes.open)
    fields = [*SUMMARY_FIELDS, "open_checks"]
    if changes.any:
        node.version += 1
        fields.append("version")
    node.save(update_fields=fields)


def _publish(nodes: list[Node]) -> None:
    """One batch of live events for the nodes a chunk changed (and one for the fleet)."""
    messages: list[tuple[str, dict[str, Any]]] = [
        (n.group, {"type": "node.changed", "node_id": n.pk, "findings_changed": True}) for n in nodes
    ]
    messages.append((live.FLEET_GROUP, {"type": "fleet.changed", "node_id": nodes[-1].pk}))
    try:
        live.publish_many(messages)
    except Exception:  # pages catch up on their next change; the run's work is stored
        log.warning("could not publish %d node change(s)", len(nodes), exc_info=True)


def _prune_runs(schedule: Schedule) -> None:
    cutoff = list(schedule.runs.order_by("-id").values_list("id", flat=True)[RUNS_KEPT : RUNS_KEPT + 1])
    if cutoff:
        schedule.runs.filter(id__lte=cutoff[0]).exclude(state=ScheduleRun.RUNNING).delete()


def last_runs(schedules: Iterable[Schedule]) -> dict[int, ScheduleRun]:
    """The latest run of each schedule (two queries whatever their number)."""
    ids = ScheduleRun.objects.filter(schedule__in=list(schedules)).values("schedule_id").annotate(last=Max("id"))
    return {r.schedule_id: r for r in ScheduleRun.objects.filter(pk__in=[row["last"] for row in ids])}
