"""A stored node's snapshot: the one builder, whoever asks.

Report checking, runs on demand, schedules, the cluster source, bundles and the node page
all build a node's ``NodeSnapshot`` here, from what the dashboard stores: the node's
newest report (or one already parsed), its rolling log tails with their kept matches (the
logs are never rescanned), and the API's view of the node and its cluster.

Only what the checks to run read is built (``diagnostics.registry.reads_of``): re-running
the peer checks of a thousand nodes reads neither their pods nor their reports.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from django.db.models import Max

from dashboard.cluster.snapshot import ClusterContext, api_base_snapshots
from dashboard.models import LogTail, Node, Report
from diagnostics.logs import hits_from_matches
from diagnostics.registry import reads_of
from diagnostics.report import NodeReport, ReportError, parse_report, snapshot_from_report
from diagnostics.snapshot import LogHit, NodeSnapshot

log = logging.getLogger(__name__)

# Parts of a snapshot that come from the API (``diagnostics.registry.READS``).
API_PARTS = frozenset({"node", "workloads", "peers", "services", "server"})


def stored_snapshots(
    nodes: Sequence[Node],
    *,
    checks: Iterable[str] | None = None,
    reports: Mapping[int, NodeReport] | None = None,
    tails: Mapping[int, Sequence[LogTail]] | None = None,
    api: bool = True,
) -> dict[int, NodeSnapshot]:
    """The snapshots of ``nodes`` (with ``cluster`` selected) for the ``checks`` to run (all when None), by node id.

    ``reports`` and ``tails`` are what the caller already holds (parsed reports, current tails);
    the rest is read in a constant number of queries per cluster. ``api=False`` leaves out the
    API half. A node with neither a report nor an API object has no snapshot, nor has a node whose
    newest report cannot be read (logged).
    """
    reads = reads_of(list(checks) if checks is not None else None)
    bases: dict[int, NodeSnapshot] = {}
    if api and reads & API_PARTS:
        by_cluster: dict[int, list[Node]] = {}
        for node in nodes:
            if node.in_api:  # a node the cluster source never listed has no API half to read
                by_cluster.setdefault(node.cluster_id, []).append(node)
        for cluster_id, group in by_cluster.items():
            context = ClusterContext.current(cluster_id, group[0].cluster.name)
            found = api_base_snapshots(group, context, workloads="workloads" in reads)
            bases.update({n.pk: found[n.name] for n in group if n.name in found})
    parsed: dict[int, NodeReport | None] = dict(reports or {})
    held: dict[int, Sequence[LogTail]] = dict(tails or {})
    if "agent" in reads:
        parsed.update(_newest_reports([n for n in nodes if n.pk not in parsed]))
        unread = [pk for pk, report in parsed.items() if report is not None and pk not in held]
        if unread:
            rows: dict[int, list[LogTail]] = {pk: [] for pk in unread}
            for tail in LogTail.objects.filter(node_id__in=unread).order_by("kind"):
                rows[tail.node_id].append(tail)
            held.update(rows)
    out: dict[int, NodeSnapshot] = {}
    for node in nodes:
        base = bases.get(node.pk)
        if node.pk in parsed and parsed[node.pk] is None:
            continue  # its newest report cannot be read: checks on the rest would resolve what it showed
        report = parsed.get(node.pk) if "agent" in reads else None
        if report is None:
            if base is not None:
                out[node.pk] = base
            continue
        texts: dict[str, tuple[str, str]] = {}
        hits: dict[str, list[LogHit]] = {}
        for tail in held.get(node.pk, ()):
            texts[tail.kind] = (tail.path, tail.text)
            if tail.matches is not None:  # else scanned whole by snapshot_from_report
                hits[tail.kind] = hits_from_matches(tail.matches, tail.text, source=tail.path, kind=tail.kind)
        out[node.pk] = snapshot_from_report(report, log_texts=texts, log_hits=hits, base=base)
    return out


def stored_snapshot(node: Node, *, checks: Iterable[str] | None = None, api: bool = True) -> NodeSnapshot | None:
    """``stored_snapshots`` of one node."""
    return stored_snapshots([node], checks=checks, api=api).get(node.pk)


def parse_stored(report: Report) -> NodeReport | None:
    """A stored report, parsed; None (with a warning) if it cannot be read."""
    try:
        return parse_report(report.document())
    except (ReportError, ValueError, OSError) as exc:
        log.warning("report %s of node %s cannot be read: %s", report.pk, report.node_id, exc)
        return None


def _newest_reports(nodes: Sequence[Node]) -> dict[int, NodeReport | None]:
    """Each node's newest report, parsed, None if unreadable; nodes without a report are left out (two queries)."""
    if not nodes:
        return {}
    newest = (
        Report.objects.filter(node_id__in=[n.pk for n in nodes])
        .values("node_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    return {report.node_id: parse_stored(report) for report in Report.objects.filter(pk__in=list(newest))}
