"""The path of a node's findings: report -> snapshot -> run -> store -> broadcast.

1. **Report**: ``ingest`` stores a report that brings something new and queues
   ``check_node`` (``queue``); a report that adds nothing is only recorded there.
2. **Snapshot**: ``snapshots.stored_snapshots`` builds a stored node's snapshot, whoever asks.
3. **Run**: ``diagnostics.registry.run_iter`` runs the checks (all, or the ones a change re-runs:
   ``registry.checks_reading``).
4. **Store**: ``store_findings`` applies a run's findings to one or many nodes: the findings'
   lifecycle, the nodes' summaries, events, notifications queued, live events after commit.
5. **Broadcast**: ``live.nodes_changed``; the consumers render.

Plain, idempotent functions; the Celery tasks in ``tasks.py`` only call them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from dashboard import live, queue
from dashboard.lifecycle import DASHBOARD_CHECKS, prepare_opened, record_transitions
from dashboard.models import HEALTH_OK, HEALTH_RANK, DiagnosisRun, Finding, LogTail, Node
from dashboard.snapshots import parse_stored, stored_snapshot, stored_snapshots
from diagnostics.logs import append_to_tail, scan_matches
from diagnostics.model import Finding as EngineFinding
from diagnostics.model import Severity, Status, sort_findings
from diagnostics.registry import all_checks, run_iter
from diagnostics.report import NodeReport
from diagnostics.snapshot import NodeSnapshot

log = logging.getLogger(__name__)


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


def append_log_tails(node: Node, reports: Sequence[NodeReport]) -> tuple[list[LogTail], list[LogTail]]:
    """The node's rolling tails with the reports' new log lines appended, in order: (all, changed).

    Nothing is written (``save_log_tails`` does). The tails' kept matches equal ``scan_matches``
    of their text: only the appended lines are scanned, the earlier matches come from the tail
    row (renumbered, or dropped when trimmed away), which keeps a report's cost independent of
    ``WND_LOG_TAIL_BYTES``.
    """
    limit = settings.WND_LOG_TAIL_BYTES
    tails = {t.kind: t for t in node.log_tails.all()}
    now = timezone.now()
    written: dict[str, LogTail] = {}
    for report in reports:
        for kind, sent in report.logs.items():
            tail = tails.get(kind)
            if tail is None:
                tail = tails[kind] = LogTail(node=node, kind=kind, path=sent.path, text="", matches=[])
                written[kind] = tail
            restart = sent.rotated or tail.path != sent.path
            if not sent.text and not restart:
                continue  # nothing new in this log
            old, known = ("", []) if restart else (tail.text, tail.matches)
            text, matches = append_to_tail(old, known, sent.text, limit=limit, kind=kind)
            tail.path, tail.text, tail.matches, tail.updated_at = sent.path, text, matches, now
            written[kind] = tail
    for tail in tails.values():
        if tail.matches is None:  # a tail stored before matches were kept
            tail.matches = scan_matches(tail.text, kind=tail.kind)
            written[tail.kind] = tail
    return sorted(tails.values(), key=lambda t: t.kind), list(written.values())


def save_log_tails(node: Node, tails: Sequence[LogTail]) -> None:
    """Write these tails of the node: one upsert each."""
    # An upsert per tail, new or changed alike: ``bulk_update`` costs more than a save per row, and a
    # many-row ``bulk_create`` on PostgreSQL sends the texts as arrays, which the driver quotes slowly.
    fields = ["path", "text", "matches", "updated_at"]
    for t in tails:
        row = LogTail(node=node, kind=t.kind, **{name: getattr(t, name) for name in fields})
        LogTail.objects.bulk_create([row], update_conflicts=True, unique_fields=["node", "kind"], update_fields=fields)


def reconcile(node: Node, findings: Iterable[EngineFinding], checks_run: set[str] | None = None) -> Changes:
    """``reconcile_many`` of one node."""
    return reconcile_many([(node, findings)], checks_run)[node.pk]


def reconcile_many(
    runs: Sequence[tuple[Node, Iterable[EngineFinding]]], checks_run: set[str] | None = None
) -> dict[int, Changes]:
    """Open, update and resolve the stored findings of each (node, findings) pair; the changes by node id.

    Only findings of checks in ``checks_run`` (all when None) are resolved when absent;
    dashboard-side checks (``lifecycle.DASHBOARD_CHECKS``) only when named. Transitions are
    recorded as events and queued for notification (``lifecycle``). A constant number of
    queries whatever the number of nodes (distinct) and findings. Call inside a transaction
    that holds the nodes' rows; ``store_findings`` is the one caller outside tests.
    """
    if not runs:
        return {}
    now = timezone.now()
    current: dict[int, dict[tuple[str, str], Finding]] = {node.pk: {} for node, _ in runs}
    for row in Finding.objects.filter(node_id__in=list(current), resolved_at__isnull=True):
        current[row.node_id][(row.check_id, row.subject)] = row
    out: dict[int, Changes] = {}
    everything = Changes()
    rewritten: list[Finding] = []
    for node, findings in runs:
        changes, changed_rows = compare_findings(node, current[node.pk], findings, checks_run, now)
        out[node.pk] = changes
        everything.opened += changes.opened
        everything.updated += changes.updated
        everything.resolved += changes.resolved
        rewritten += changed_rows
    prepare_opened(everything.opened, now)
    write_changes(everything, rewritten, now)
    record_transitions(everything.opened, everything.resolved, now)
    return out


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
FACT_FIELDS = ("os_build", "os_name", "runtime_version", "kubelet_version")


def store_findings(
    runs: Sequence[tuple[Node, Iterable[EngineFinding]]],
    checks_run: set[str] | None = None,
    *,
    fields: Sequence[str] = (),
    announce: bool = False,
) -> dict[int, Changes]:
    """Apply each run's findings to its node; the one place findings are stored. Returns the changes by node id.

    1. The findings' lifecycle (``reconcile_many``): opened, updated, resolved, events written,
       notifications queued.
    2. Each node's summary (health, counts, open checks), written with the node's ``fields``
       the caller changed, in one statement for all the nodes.
    3. After commit, one batch of live events: for the nodes whose findings opened or resolved,
       or every node when ``announce`` (the caller changed what their pages show).

    Runs in its own transaction (or the caller's) and locks the nodes' rows in one order, so two
    stores never deadlock; the nodes given are updated in place. A constant number of queries
    whatever the number of nodes. Nodes must be distinct.
    """
    if not runs:
        return {}
    with transaction.atomic():
        ids = sorted(node.pk for node, _ in runs)
        list(Node.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk").values_list("pk"))
        changes = reconcile_many(runs, checks_run)
        nodes = [node for node, _ in runs]
        for node in nodes:
            refresh_summary(node, changes[node.pk].open)
        save_nodes(nodes, [*SUMMARY_FIELDS, *fields])
        told = [n for n in nodes if announce or changes[n.pk].any]
        if told:
            # robust: a channel layer that is down loses live updates, never the stored findings.
            transaction.on_commit(lambda: live.nodes_changed(told), robust=True)
    return changes


def save_nodes(nodes: Sequence[Node], names: Sequence[str]) -> None:
    """Write these fields of the nodes in one statement run for every row.

    ``bulk_update`` would do it in a few queries too, but builds a CASE expression per row and
    field in Python: seconds for a thousand nodes, more than the checks themselves.
    """
    if not nodes:
        return
    wanted = set(names)
    columns = [f for f in Node._meta.concrete_fields if f.name in wanted]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in columns)
    sql = f"UPDATE {quote(Node._meta.db_table)} SET {assignments} WHERE {quote(str(Node._meta.pk.column))} = %s"
    rows = [[f.get_db_prep_save(getattr(n, f.attname), connection) for f in columns] + [n.pk] for n in nodes]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


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


def check_node(node_id: int) -> bool:
    """Check the node's reports stored since the last check; return whether there were any.

    Reports that queued up are checked together (``queue.check_node``): the log lines of
    every one go to the rolling tails, in order, and the checks run once, on the newest
    one's facts.

    1. Read and parse the reports, append their lines, run the checks: no lock held, so the
       database keeps taking reports meanwhile (SQLite has one writer at a time).
    2. In one transaction, under the node's row lock: claim (``last_diagnosed_report_id``
       still where step 1 found it, else another check got there first and step 1 starts
       again from what it left), write the tails, the findings (``store_findings``) and the
       reports' ``diagnosed_at``. A worker killed at any point leaves them all owed, so the
       task delivered again (or queued again by ``delivery.sweep``) does the whole work;
       run twice, the second finds nothing to do (idempotent).
    """
    queue.check_taken(node_id)
    for _attempt in range(5):
        node = Node.objects.select_related("cluster").filter(pk=node_id).first()
        if node is None:
            return False
        start = node.last_diagnosed_report_id
        rows = list(node.reports.filter(pk__gt=start).order_by("pk"))
        if not rows:
            # Nothing newer than the last check; a report older than it is settled by it.
            node.reports.filter(diagnosed_at__isnull=True).update(diagnosed_at=timezone.now())
            return False
        parsed = [report for report in map(parse_stored, rows) if report is not None]
        findings: list[EngineFinding] = []
        tails: list[LogTail] = []
        if parsed:
            every, tails = append_log_tails(node, parsed)
            snap = stored_snapshots([node], reports={node.pk: parsed[-1]}, tails={node.pk: every})[node.pk]
            findings = list(run_iter(snap))
            apply_node_facts(node, snap)
        with transaction.atomic():
            claimed = Node.objects.select_for_update(of=("self",)).filter(pk=node_id, last_diagnosed_report_id=start)
            if not list(claimed.values_list("pk", flat=True)):
                continue  # checked meanwhile: start again from what that check left
            node.last_diagnosed_report_id = rows[-1].pk
            # Done with these reports once this commits (and with any older one still owed).
            node.reports.filter(pk__lte=rows[-1].pk, diagnosed_at__isnull=True).update(diagnosed_at=timezone.now())
            if not parsed:  # none could be read: nothing to check, nothing to show
                Node.objects.filter(pk=node.pk).update(last_diagnosed_report_id=node.last_diagnosed_report_id)
                return True
            save_log_tails(node, tails)
            # Every page of the node changes (its reports, facts, last check): announced even when
            # no finding opened or resolved.
            store_findings([(node, findings)], fields=[*FACT_FIELDS, "last_diagnosed_report_id"], announce=True)
        if rows[-1].pk % 10 == 0 or len(rows) >= 10:
            prune_reports(node)
        return True
    return False


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
    report_id = node.reports.order_by("-id").values_list("id", flat=True).first()
    snap = stored_snapshot(node) if report_id is not None else None
    if snap is None:
        run.error = "This node has not sent a report yet: start its agent, then run the diagnostics again."
        run.finished_at = timezone.now()
        run.save()
        live.run_progress(node.pk, node.group, run.pk)
        return
    findings = list(_stream(run, snap))
    with transaction.atomic():
        store_findings([(node, findings)], announce=True)
        run.finished_at = timezone.now()
        run.findings_count = len(findings)
        run.report_id = report_id
        run.save()
    live.run_progress(node.pk, node.group, run.pk)


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
