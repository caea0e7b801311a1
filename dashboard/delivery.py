"""Work that is owed survives restarts: the sweeper of reports, on-demand runs and bundles.

Contract:
- a stored report is owed a diagnosis until ``Report.diagnosed_at`` is set (in the
  transaction that writes its findings, or folds its log lines into a newer report's
  diagnosis). ``sweep`` queues again, oldest first, every owed report whose task is not
  queued (the broker refused it) or was queued more than ``WND_REQUEUE_AFTER`` s ago,
  and every owed report after the broker lost its data (a Redis restart without its
  append-only file) or when the worker starts. Diagnosing a report twice is harmless:
  the second time finds it done;
- an on-demand run or a bundle build holds a lease, renewed as it makes progress
  (``heartbeat_at``); after ``WND_LEASE_SECONDS`` without one its worker is taken for
  dead: the run is failed with a message, the bundle is built again (``MAX_BUILDS`` times
  in all) and then failed.

``sweep`` runs in the maintenance task (every 30 s) and when a worker starts; it is
idempotent and safe to run concurrently.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from dashboard import live, queue
from dashboard.models import Bundle, DiagnosisRun, Report

log = logging.getLogger(__name__)

MAX_BUILDS = 2
SWEEP_BATCH = 5000  # reports queued per sweep at most; the next sweep takes the rest
# A key the sweeper keeps in Redis: when it is gone, Redis lost its data and with it the queue.
BROKER_MARK = "wnd:delivery:broker-mark"
RUN_DIED = "Its worker stopped before the run finished: run the diagnostics again."
BUNDLE_DIED = "Its worker stopped twice while building it: request the bundle again."


def sweep(now: datetime | None = None, *, everything: bool = False) -> dict[str, int]:
    """Queue owed reports again, fail runs and re-queue or fail bundles whose lease expired.

    ``everything``: queue every owed report whatever its ``queued_at`` (a worker starting).
    """
    now = now or timezone.now()
    lost = broker_lost()
    return {
        "reports_requeued": requeue_reports(now, everything=everything or lost),
        "runs_failed": fail_dead_runs(now),
        **recover_bundles(now),
    }


def broker_lost() -> bool:
    """Whether Redis lost its data since the last sweep (the mark is set again)."""
    try:
        return not live.redis_client().set(BROKER_MARK, "1", nx=False, get=True)
    except redis.RedisError:
        return False  # Redis is down: nothing can be queued now anyway


def requeue_reports(now: datetime, *, everything: bool = False) -> int:
    """Queue again the check of the nodes of owed reports, oldest first; return how many reports it covers.

    One check per node covers all its owed reports (``diagnosis.check_node``).
    """
    owed = Report.objects.filter(diagnosed_at__isnull=True)
    if not everything:
        cutoff = now - timedelta(seconds=settings.WND_REQUEUE_AFTER)
        owed = owed.filter(Q(queued_at__isnull=True) | Q(queued_at__lt=cutoff))
    rows = list(owed.order_by("pk").values_list("pk", "node_id")[:SWEEP_BATCH])
    by_node: dict[int, list[int]] = {}
    for pk, node_id in rows:
        by_node.setdefault(node_id, []).append(pk)
    queued: list[int] = []
    for node_id, ids in by_node.items():
        try:
            queue.check_node(node_id, force=True)
        except Exception as exc:  # the broker is down: the next sweep tries again
            log.warning("could not queue the check of node %s: %s", node_id, exc)
            break
        queued += ids
    if queued:
        Report.objects.filter(pk__in=queued).update(queued_at=now)
        log.info("queued the diagnosis of %d owed reports again", len(queued))
    return len(queued)


def _dead(now: datetime, since: str) -> Q:
    """No sign of life for ``WND_LEASE_SECONDS``: no heartbeat since, or none ever and ``since`` before."""
    cutoff = now - timedelta(seconds=settings.WND_LEASE_SECONDS)
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, **{f"{since}__lt": cutoff})


def fail_dead_runs(now: datetime) -> int:
    """Finish, with an error, the on-demand runs whose lease expired; return how many."""
    dead = DiagnosisRun.objects.filter(_dead(now, "started_at"), finished_at__isnull=True)
    failed = 0
    for run in list(dead.select_related("node__cluster")):
        if dead.filter(pk=run.pk).update(finished_at=now, error=RUN_DIED):
            failed += 1
            _quietly(live.run_progress, run.node_id, run.node.group, run.pk)
    return failed


def recover_bundles(now: datetime) -> dict[str, int]:
    """Build again (or fail, after ``MAX_BUILDS``) the bundles whose lease expired."""
    from dashboard import bundles

    stale = Bundle.objects.filter(_dead(now, "created_at"), state__in=[Bundle.PENDING, Bundle.RUNNING])
    done = {"bundles_requeued": 0, "bundles_failed": 0}
    for pk, attempts in stale.values_list("pk", "attempts"):
        # Compare and set: another sweep, or the build itself, may have moved it on meanwhile.
        current = stale.filter(pk=pk, attempts=attempts)
        if attempts >= MAX_BUILDS:
            if current.update(state=Bundle.FAILED, error=BUNDLE_DIED, finished_at=now):
                done["bundles_failed"] += 1
                _quietly(bundles.publish_progress, pk)
            continue
        if not current.update(state=Bundle.PENDING, progress=0, heartbeat_at=now):
            continue
        try:
            queue.send(queue.BUILD_BUNDLE, pk)
        except Exception as exc:  # the broker is down: the lease expires again, the next sweep retries
            log.warning("could not queue bundle %s again: %s", pk, exc)
            continue
        done["bundles_requeued"] += 1
        _quietly(bundles.publish_progress, pk)
    return done


def _quietly(publish: object, *args: object) -> None:
    """Publish a live event; Redis being down must not stop a sweep (pages resync later)."""
    try:
        publish(*args)  # type: ignore[operator]
    except Exception as exc:
        log.warning("live event not sent: %s", exc)
