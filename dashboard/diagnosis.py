"""Diagnosis on the dashboard side: report -> snapshot -> checks -> stored findings -> live events.

Plain, idempotent functions; the Celery tasks in ``tasks.py`` only call them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dashboard import live
from dashboard.cluster.snapshot import api_base_snapshot
from dashboard.lifecycle import DASHBOARD_CHECKS, prepare_opened, record_transitions
from dashboard.models import HEALTH_OK, HEALTH_RANK, DiagnosisRun, Finding, LogTail, Node, Report
from diagnostics.logs import append_to_tail, hits_from_matches, scan_matches
from diagnostics.model import Finding as EngineFinding
from diagnostics.model import Severity, Status, sort_findings
from diagnostics.registry import all_checks, run_iter
from diagnostics.report import NodeReport, parse_report, snapshot_from_report
from diagnostics.snapshot import LogHit, NodeSnapshot


@dataclass
class Changes:
    opened: list[Finding] = field(default_factory=list)
    updated: list[Finding] = field(default_factory=list)
    resolved: list[Finding] = field(default_factory=list)
    still_open: list[Finding] = field(default_factory=list)  # open before, not run this time

    @property
    def any(self) -> bool:
        return bool(self.opened or self.resolved)

    @property
    def open(self) -> list[Finding]:
        """Every finding open on the node after the run."""
        return self.opened + self.updated + self.still_open


def update_log_tails(node: Node, report: NodeReport) -> tuple[dict[str, tuple[str, str]], dict[str, list[LogHit]]]:
    """Append the report's new log lines to the node's rolling tails (a query per log sent).

    Returns (path, text) and the log hits per kind, the hits equal to ``scan_text`` of the
    whole tail: only the appended lines are scanned, the earlier matches come from the tail
    row (renumbered, or dropped when trimmed away), which keeps a report's cost independent
    of ``WND_LOG_TAIL_BYTES``.
    """
    limit = settings.WND_LOG_TAIL_BYTES
    tails = {t.kind: t for t in node.log_tails.all()}
    now = timezone.now()
    created: list[LogTail] = []
    changed: list[LogTail] = []
    for kind, log in report.logs.items():
        tail = tails.get(kind)
        if tail is None:
            tail = tails[kind] = LogTail(node=node, kind=kind, path=log.path)
            created.append(tail)
        else:
            changed.append(tail)
        appended = not (log.rotated or tail.path != log.path)
        old, known = (tail.text, tail.matches) if appended else ("", [])
        text, matches = append_to_tail(old, known, log.text, limit=limit, kind=kind)
        tail.path, tail.text, tail.matches, tail.updated_at = log.path, text, matches, now
    for tail in tails.values():
        if tail.matches is None:  # a tail stored before matches were kept
            tail.matches = scan_matches(tail.text, kind=tail.kind)
            if tail.pk is not None and tail not in changed:
                changed.append(tail)
    # An upsert per tail, new or changed alike: ``bulk_update`` costs more than a save per row, and a
    # many-row ``bulk_create`` on PostgreSQL sends the texts as arrays, which the driver quotes slowly.
    fields = ["path", "text", "matches", "updated_at"]
    for t in created + changed:
        row = LogTail(node=node, kind=t.kind, **{name: getattr(t, name) for name in fields})
        LogTail.objects.bulk_create([row], update_conflicts=True, unique_fields=["node", "kind"], update_fields=fields)
    texts = {kind: (t.path, t.text) for kind, t in tails.items()}
    hits = {kind: hits_from_matches(t.matches or [], t.text, source=t.path, kind=kind) for kind, t in tails.items()}
    return texts, hits


def snapshot_for(report: Report, *, base: NodeSnapshot | None = None) -> NodeSnapshot:
    """The snapshot of ``report`` with the node's rolling log tails (tails must be current)."""
    parsed = parse_report(report.document())
    tails = list(report.node.log_tails.all())
    texts = {t.kind: (t.path, t.text) for t in tails}
    hits = {
        t.kind: hits_from_matches(t.matches, t.text, source=t.path, kind=t.kind) for t in tails if t.matches is not None
    }
    return snapshot_from_report(parsed, log_texts=texts, log_hits=hits, base=base)


def reconcile(node: Node, findings: Iterable[EngineFinding], checks_run: set[str] | None = None) -> Changes:
    """Open, update and resolve the node's stored findings to match a run's results.

    Only findings of checks in ``checks_run`` (all when None) are resolved when
    absent; dashboard-side checks (``lifecycle.DASHBOARD_CHECKS``) only when named.
    Transitions are recorded as events and queued for notification (``lifecycle``).
    A constant number of queries whatever the number of findings.
    """
    now = timezone.now()
    current = {(f.check_id, f.subject): f for f in node.findings.filter(resolved_at__isnull=True)}
    changes, rewritten = compare_findings(node, current, findings, checks_run, now)
    prepare_opened(changes.opened, now)
    write_changes(changes, rewritten, now)
    record_transitions(changes.opened, changes.resolved, now)
    return changes


def compare_findings(
    node: Node,
    current: dict[tuple[str, str], Finding],
    findings: Iterable[EngineFinding],
    checks_run: set[str] | None,
    now: datetime,
) -> tuple[Changes, list[Finding]]:
    """``reconcile``'s decisions, without a query: the changes, and the rows whose content changed.

    ``current`` is the node's open findings by (check, subject). Rows are changed in memory only;
    ``write_changes`` stores them.
    """
    changes = Changes()
    rewritten: list[Finding] = []  # still failing, with new content: a full update
    seen: set[tuple[str, str]] = set()
    for found in findings:
        key = (found.check, found.subject)
        if key in seen:
            continue
        seen.add(key)
        values = {
            "severity": found.severity.slug,
            "status": found.status.slug,
            "title": found.title[:300],
            "summary": found.summary,
            "evidence": [e.to_dict() for e in found.evidence],
            "fix": list(found.fix),
            "docs": found.docs,
        }
        row = current.get(key)
        if row is None:
            changes.opened.append(Finding(node=node, check_id=found.check, subject=found.subject[:400], **values))
        else:
            if any(getattr(row, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(row, name, value)
                rewritten.append(row)
            row.last_seen = now
            row.seen_count += 1
            changes.updated.append(row)
    for key, row in current.items():
        if key in seen:
            continue
        ran = row.check_id in checks_run if checks_run is not None else row.check_id not in DASHBOARD_CHECKS
        if ran:
            row.resolved_at = now
            changes.resolved.append(row)
        else:
            changes.still_open.append(row)
    return changes, rewritten


def write_changes(changes: Changes, rewritten: list[Finding], now: datetime) -> None:
    """Store what ``compare_findings`` decided (of one node or many together) in at most four queries.

    Opened findings must have been prepared (``lifecycle.prepare_opened``) first.
    """
    Finding.objects.bulk_create(changes.opened)
    # Most runs find what the last one found: one UPDATE marks those as seen again,
    # and only findings whose content changed pay for a per-row bulk update.
    if changes.updated:
        Finding.objects.filter(pk__in=[r.pk for r in changes.updated]).update(
            last_seen=now, seen_count=F("seen_count") + 1
        )
    if rewritten:
        Finding.objects.bulk_update(rewritten, ["severity", "status", "title", "summary", "evidence", "fix", "docs"])
    if changes.resolved:
        Finding.objects.filter(pk__in=[r.pk for r in changes.resolved]).update(resolved_at=now)


SUMMARY_FIELDS = (
    "health",
    "health_rank",
    "critical_count",
    "warning_count",
    "info_count",
    "unknown_count",
    "open_checks",
)


def refresh_summary(node: Node, open_findings: list[Finding]) -> None:
    """Recompute the node's health and counts from its open findings."""
    counts = {s.slug: 0 for s in Severity}
    unknown = 0
    checks: list[str] = []
    for finding in open_findings:
        if finding.status == Status.UNKNOWN.slug:
            unknown += 1
            continue
        counts[finding.severity] += 1
        checks.append(finding.check_id)
    worst = next((s.slug for s in Severity.ordered() if counts[s.slug]), HEALTH_OK)
    node.health, node.health_rank = worst, HEALTH_RANK[worst]
    node.critical_count = counts["critical"]
    node.warning_count = counts["warning"]
    node.info_count = counts["info"]
    node.unknown_count = unknown
    node.open_checks = (" " + " ".join(sorted(set(checks))) + " ")[:2000] if checks else ""


def apply_node_facts(node: Node, snap: NodeSnapshot) -> None:
    info = snap.node_info()
    if snap.os is not None:
        node.os_build = snap.os.value.version
        node.os_name = snap.os.value.product_name
    elif info.get("kernelVersion"):
        node.os_build = str(info["kernelVersion"])
    node.os_name = node.os_name or str(info.get("osImage", ""))
    node.runtime_version = str(info.get("containerRuntimeVersion", "")) or node.runtime_version
    node.kubelet_version = str(info.get("kubeletVersion", "")) or node.kubelet_version


def diagnose_report(report_id: int) -> bool:
    """Diagnose one stored report; skip it if a newer report of the node was already diagnosed.

    Returns whether the report was diagnosed. Safe to run twice (idempotent): the claim and
    the writes are one transaction, so a worker that dies half-way leaves the report owed
    and a redelivered task does the work. The log lines of older reports still owed are
    appended first, in order, so none are lost when reports are diagnosed out of order.
    """
    report = Report.objects.select_related("node__cluster").filter(pk=report_id).first()
    if report is None or report.diagnosed_at is not None:
        return False
    parsed = parse_report(report.document())
    with transaction.atomic():
        # Locked: a scheduled run or the cluster watcher may reconcile this node at the same moment.
        node = Node.objects.select_for_update(of=("self",)).select_related("cluster").get(pk=report.node_id)
        # 1. Claim: only a report newer than the last diagnosed one may change the findings.
        if node.last_diagnosed_report_id >= report.pk:
            Report.objects.filter(pk=report.pk, diagnosed_at__isnull=True).update(diagnosed_at=timezone.now())
            return False
        # 2. Context: the rolling log tails, then the snapshot.
        owed = node.reports.filter(
            pk__gt=node.last_diagnosed_report_id, pk__lt=report.pk, diagnosed_at__isnull=True
        ).order_by("pk")
        for older in owed:
            update_log_tails(node, parse_report(older.document()))
        texts, hits = update_log_tails(node, parsed)
        snap = snapshot_from_report(parsed, log_texts=texts, log_hits=hits, base=api_base_snapshot(node))
        # 3. Checks, then the stored findings and the node's summary.
        changes = reconcile(node, run_iter(snap))
        refresh_summary(node, changes.open)
        apply_node_facts(node, snap)
        node.last_diagnosed_report_id = report.pk
        node.version += 1
        node.save()
        node.reports.filter(pk__lte=report.pk, diagnosed_at__isnull=True).update(diagnosed_at=timezone.now())
    if report.pk % 10 == 0:
        prune_reports(node)
    # 4. Tell the browsers (after commit, so they read what was written).
    live.node_changed(node.pk, node.group, findings_changed=changes.any)
    return True


def prune_reports(node: Node) -> None:
    """Keep the newest ``WND_REPORTS_KEPT_PER_NODE`` reports of a node."""
    keep = settings.WND_REPORTS_KEPT_PER_NODE
    cutoff = list(node.reports.order_by("-id").values_list("id", flat=True)[keep : keep + 1])
    if cutoff:
        node.reports.filter(id__lte=cutoff[0]).delete()


def ask_for_fresh_report(node: Node) -> bool:
    """Ask the node's connected agent for a report now; wait (bounded) until it has arrived.

    Returns whether a fresh report arrived. A node without a connected agent is not waited for.
    """
    from agent.protocol import RequestError
    from dashboard import agents

    if not agents.is_online(node.pk):
        return False
    asked = timezone.now()
    try:
        record = agents.send_request(node, "collect-now", {}, user="diagnostics run")
    except RequestError:
        return False
    if record["state"] == "error":
        return False
    deadline = time.monotonic() + settings.WND_SCHEDULE_COLLECT_WAIT
    while time.monotonic() < deadline:
        if Node.objects.filter(pk=node.pk, last_report_at__gte=asked).exists():
            return True
        time.sleep(0.25)
    return False


def run_now(run_id: int) -> None:
    """An on-demand run: fresh data from the agent if it is connected, then every check on the
    node's latest report, streaming progress and findings."""
    run = DiagnosisRun.objects.select_related("node__cluster").get(pk=run_id)
    if run.finished_at is not None:  # done, or failed when its lease expired (``dashboard.delivery``)
        return
    node = run.node
    ask_for_fresh_report(node)
    report = node.reports.order_by("-id").first()
    if report is None:
        run.error = "This node has not sent a report yet: start its agent, then run the diagnostics again."
        run.finished_at = timezone.now()
        run.save()
        live.run_progress(node.pk, node.group, run.pk)
        return
    snap = snapshot_for(report, base=api_base_snapshot(node))
    findings = list(_stream(run, snap))
    with transaction.atomic():
        changes = reconcile(node, findings)
        refresh_summary(node, changes.open)
        node.version = F("version") + 1
        # Only what this run decides: reports may have updated the node meanwhile.
        node.save(update_fields=[*SUMMARY_FIELDS, "version"])
        run.finished_at = timezone.now()
        run.findings_count = len(findings)
        run.report_id = report.pk
        run.save()
    live.run_progress(node.pk, node.group, run.pk)
    live.node_changed(node.pk, node.group, findings_changed=changes.any)


def _stream(run: DiagnosisRun, snap: NodeSnapshot) -> Iterator[EngineFinding]:
    """Run every check, saving progress and publishing each finding as it is produced."""
    specs = all_checks()
    run.checks_total = len(specs)
    run.save(update_fields=["checks_total"])
    for done, check_id in enumerate(specs, start=1):
        found = sort_findings(list(run_iter(snap, only=[check_id])))
        # Progress renews the run's lease (``dashboard.delivery``).
        DiagnosisRun.objects.filter(pk=run.pk).update(checks_done=done, heartbeat_at=timezone.now())
        if found:
            for finding in found:
                live.run_progress(run.node_id, run.node.group, run.pk, finding.to_dict())
                yield finding
        elif done % 8 == 0 or done == len(specs):
            live.run_progress(run.node_id, run.node.group, run.pk)
