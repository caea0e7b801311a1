"""A finding's life: opened, updated while it persists, resolved, back again; and what people do about it.

Rules (``diagnosis.reconcile`` applies the first three on every run):

1. A failure with no open finding of the same (node, check, subject) opens one. If that key
   was resolved before, the new row is its next ``occurrence`` and the event is
   ``reopened``: each row is one episode [first_seen, resolved_at], so the timeline reads
   "appeared, resolved, came back" without rewriting history. A silence still running on
   the previous episode carries over (a flapping finding stays quiet); an acknowledgement
   does not (a recurrence deserves a fresh look).
2. While it persists, the same row is updated (``last_seen``, ``seen_count``).
3. When a run of its check passes, it is resolved.
4. An operator may acknowledge an open finding (with a note) or silence it until a time.
   Silence holds back notifications; when it ends (``expire_silences``, periodic) a finding
   still open is notified then, unless it already was.

Dashboard-side checks (``DASHBOARD_CHECKS``: no function in the engine, decided from the
dashboard's own records) are resolved only by a run that names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from dashboard import notify
from dashboard.models import Finding, Node
from dashboard.monitoring import FindingEvent
from diagnostics.model import Severity
from diagnostics.registry import all_checks

# id -> (severity, title). Known to the pages and filters like the engine's checks.
DASHBOARD_CHECKS: dict[str, tuple[Severity, str]] = {
    "node.agent-stale": (Severity.WARNING, "The node's agent has stopped reporting"),
}

HISTORY_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def known_check_ids() -> list[str]:
    """Every check id a finding may carry: the engine's and the dashboard's own."""
    return sorted({*all_checks(), *DASHBOARD_CHECKS})


def prepare_opened(opened: Sequence[Finding], now: datetime) -> None:
    """Number the occurrence of findings about to be opened and carry over running silences.

    The findings may belong to several nodes. One query, only when something opens.
    """
    if not opened:
        return
    previous = {
        (row["node_id"], row["check_id"], row["subject"]): row
        for row in Finding.objects.filter(
            node_id__in={f.node_id for f in opened},
            resolved_at__isnull=False,
            check_id__in={f.check_id for f in opened},
            subject__in={f.subject for f in opened},
        )
        .values("node_id", "check_id", "subject")
        .annotate(occurrence_max=Max("occurrence"), silenced_max=Max("silenced_until"))
    }
    for finding in opened:
        row = previous.get((finding.node_id, finding.check_id, finding.subject))
        if row is None:
            continue
        finding.occurrence = row["occurrence_max"] + 1
        if row["silenced_max"] is not None and row["silenced_max"] > now:
            finding.silenced_until = row["silenced_max"]
            finding.silence_note = "silence carried over from the previous occurrence"


def record_transitions(opened: Sequence[Finding], resolved: Sequence[Finding], now: datetime) -> list[FindingEvent]:
    """Write the events of a run's transitions (any nodes) and queue their notifications (one query each)."""
    events = [
        FindingEvent(
            finding=f,
            node_id=f.node_id,
            kind=FindingEvent.REOPENED if f.occurrence > 1 else FindingEvent.OPENED,
            at=now,
        )
        for f in opened
    ]
    events += [FindingEvent(finding=f, node_id=f.node_id, kind=FindingEvent.RESOLVED, at=now) for f in resolved]
    if not events:
        return []
    FindingEvent.objects.bulk_create(events)
    notify.enqueue(events, now)
    return events


def acknowledge(finding: Finding, user: Any, note: str) -> FindingEvent:
    """Acknowledge an open finding with a note; acknowledging again replaces the note.

    Raises ``ValueError`` for a resolved finding.
    """
    if not finding.is_open:
        raise ValueError("This finding is already resolved: there is nothing to acknowledge.")
    now = timezone.now()
    note = note.strip()[:2000]
    with transaction.atomic():
        Finding.objects.filter(pk=finding.pk).update(acknowledged_at=now, acknowledged_by=user, ack_note=note)
        finding.acknowledged_at, finding.acknowledged_by, finding.ack_note = now, user, note
        return FindingEvent.objects.create(
            finding=finding, node_id=finding.node_id, kind=FindingEvent.ACKNOWLEDGED, at=now, user=user, note=note
        )


def silence(finding: Finding, user: Any, duration: timedelta, note: str = "") -> FindingEvent:
    """Hold back the finding's notifications for ``duration`` (from now).

    Raises ``ValueError`` for a resolved finding or a duration that is not positive.
    """
    if not finding.is_open:
        raise ValueError("This finding is already resolved: there is nothing to silence.")
    if duration <= timedelta(0):
        raise ValueError("A silence must last some time.")
    now = timezone.now()
    until = now + duration
    note = note.strip()[:2000]
    with transaction.atomic():
        Finding.objects.filter(pk=finding.pk).update(silenced_until=until, silence_note=note)
        finding.silenced_until, finding.silence_note = until, note
        return FindingEvent.objects.create(
            finding=finding,
            node_id=finding.node_id,
            kind=FindingEvent.SILENCED,
            at=now,
            user=user,
            note=f"until {until:%Y-%m-%d %H:%M} UTC" + (f": {note}" if note else ""),
        )


def unsilence(finding: Finding, user: Any = None, *, note: str = "") -> FindingEvent | None:
    """End the finding's silence now (if it has one) and notify what it held back."""
    now = timezone.now()
    with transaction.atomic():
        if not Finding.objects.filter(pk=finding.pk, silenced_until__isnull=False).update(silenced_until=None):
            return None
        finding.silenced_until = None
        event = FindingEvent.objects.create(
            finding=finding, node_id=finding.node_id, kind=FindingEvent.UNSILENCED, at=now, user=user, note=note
        )
        _notify_held_back([finding.pk], now)
    return event


def expire_silences(now: datetime | None = None) -> int:
    """End every silence that ran out; return how many open findings it concerned. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        ended = list(
            Finding.objects.select_for_update()
            .filter(silenced_until__lte=now, resolved_at__isnull=True)
            .values_list("pk", "node_id")
        )
        Finding.objects.filter(silenced_until__lte=now).update(silenced_until=None)
        FindingEvent.objects.bulk_create(
            FindingEvent(finding_id=pk, node_id=node_id, kind=FindingEvent.UNSILENCED, at=now, note="silence expired")
            for pk, node_id in ended
        )
        _notify_held_back([pk for pk, _node in ended], now)
    return len(ended)


def _notify_held_back(finding_ids: list[int], now: datetime) -> None:
    """Queue the latest open/reopen event of each finding; channels that already had it are skipped."""
    if not finding_ids:
        return
    latest = (
        FindingEvent.objects.filter(finding_id__in=finding_ids, kind__in=[FindingEvent.OPENED, FindingEvent.REOPENED])
        .values("finding_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    events = list(FindingEvent.objects.select_related("finding").filter(pk__in=list(latest)))
    notify.enqueue(events, now)


def timeline(node: Node, *, days: int = 7, limit: int = 200) -> list[FindingEvent]:
    """The node's finding events of the last ``days``, newest first."""
    since = timezone.now() - timedelta(days=days)
    return list(
        FindingEvent.objects.filter(node=node, at__gte=since)
        .select_related("finding", "user")
        .order_by("-at", "-id")[:limit]
    )


def fleet_history(window: str, *, cluster: str = "", limit: int = 500) -> dict[str, Any]:
    """Transitions across the fleet in a window (``24h`` or ``7d``): events and totals."""
    since = timezone.now() - HISTORY_WINDOWS.get(window, HISTORY_WINDOWS["24h"])
    events = FindingEvent.objects.filter(at__gte=since, kind__in=FindingEvent.TRANSITIONS)
    if cluster:
        events = events.filter(node__cluster__name=cluster)
    counts = {kind: 0 for kind in FindingEvent.TRANSITIONS}
    counts.update(dict(events.order_by().values("kind").annotate(n=Count("id")).values_list("kind", "n")))
    return {
        "since": since,
        "events": list(events.select_related("finding", "node__cluster").order_by("-at", "-id")[:limit]),
        "counts": counts,
        "still_open": Finding.objects.filter(first_seen__gte=since, resolved_at__isnull=True).count(),
    }
