"""Diagnosis when the API side changes: nodes (with or without an agent) and workloads.

Plain, idempotent functions: the watcher calls them for what a change affects,
and tests and the bench call them directly. The storing of findings is
``findings.reconcile_many`` (``diagnosis.reconcile`` for many nodes) and ``refresh_summary``,
shared with report diagnosis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from functools import cache

from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from dashboard import live
from dashboard.cluster.findings import reconcile_many
from dashboard.cluster.models import ApiObject, WorkloadFinding
from dashboard.cluster.snapshot import ClusterContext, api_base_snapshots, api_source
from dashboard.diagnosis import refresh_summary, snapshot_for
from dashboard.models import Cluster, Finding, Node
from diagnostics.model import Finding as EngineFinding
from diagnostics.model import Status
from diagnostics.registry import all_checks, run_iter
from diagnostics.report import ReportError
from diagnostics.snapshot import Fact, NodeSnapshot

log = logging.getLogger(__name__)

# Checks that compare a node with the rest of the cluster: re-run on every Windows node
# when services, endpoint slices or another node's versions change.
# Those comparing the node's HNS state (agent data) with services and endpoint slices,
ENDPOINT_CHECKS = ("hns.stale-remote-endpoints", "hns.lb-policy-missing")
# and those comparing it with the other Windows nodes and the API server.
PEER_CHECKS = ("node.version-skew", "node.config-drift")
CLUSTER_WIDE_CHECKS = ENDPOINT_CHECKS + PEER_CHECKS
# Checks that read neither the pods nor the events of a node (the Node object, agent data and the
# cluster view only): re-running only these skips reading every pod, the bulk of the API objects.
WITHOUT_WORKLOADS = frozenset(PEER_CHECKS)
# Nodes whose findings are stored in one transaction: few queries, short locks.
STORE_BATCH = 200


@cache
def workload_checks() -> tuple[str, ...]:
    """Ids of the checks that judge one pod or controller on its own."""
    return tuple(sorted(c for c in all_checks() if c.startswith("workload.") or c == "dns.clusterfirstwithhostnet"))


def node_snapshot(node: Node, base: NodeSnapshot | None) -> NodeSnapshot | None:
    """The node's snapshot: its latest report merged with the API facts, or the API facts alone."""
    report = node.reports.order_by("-id").first() if node.has_agent else None
    if report is None:
        return base
    try:
        return snapshot_for(report, base=base)
    except (ReportError, ValueError):
        log.warning("report %s of %s cannot be read; using the API facts only", report.pk, node)
        return base


def diagnose_nodes(
    cluster: Cluster, names: Iterable[str], *, only: Iterable[str] | None = None, agents_only: bool = False
) -> int:
    """Re-run the checks (all, or the ids in ``only``) on these nodes of ``cluster``; return how many changed.

    ``agents_only`` skips nodes without an agent (what only agent data can change).
    A node without an agent keeps only failures: "unknown" for lack of agent
    data would be noise on every such node; its page says it has no agent.
    Nodes whose findings are the same as those stored are not written.
    """
    wanted = tuple(only) if only is not None else None
    query = Node.objects.select_related("cluster").filter(cluster=cluster, name__in=list(names))
    if agents_only:
        query = query.filter(last_report_at__isnull=False)
    nodes = list(query)
    if not nodes:
        return 0
    context = ClusterContext.current(cluster.pk, cluster.name)
    bases = api_base_snapshots(nodes, context, workloads=wanted is None or not set(wanted) <= WITHOUT_WORKLOADS)
    stored: dict[int, set[tuple[str, ...]]] = {n.pk: set() for n in nodes}
    rows = Finding.objects.filter(node__in=nodes, resolved_at__isnull=True)
    if wanted is not None:
        rows = rows.filter(check_id__in=wanted)
    for row in rows.values_list("node_id", "check_id", "subject", "severity", "status", "summary"):
        stored[row[0]].add(tuple(row[1:]))
    pending: list[tuple[int, list[EngineFinding]]] = []  # nodes whose findings differ from those stored
    for node in nodes:
        snap = node_snapshot(node, bases.get(node.name))
        if snap is None:
            continue
        findings = list(run_iter(snap, wanted))
        if not node.has_agent:
            findings = [f for f in findings if f.status is Status.FAIL]
        found = {(f.check, f.subject[:400], f.severity.slug, f.status.slug, f.summary) for f in findings}
        if found == stored[node.pk]:
            continue  # nothing new to store or show
        pending.append((node.pk, findings))
    checks_run = set(wanted) if wanted is not None else None
    for start in range(0, len(pending), STORE_BATCH):
        batch = dict(pending[start : start + STORE_BATCH])
        for attempt in (1, 2):
            try:
                changed = _store(batch, checks_run)
                break
            except IntegrityError:  # a report's diagnosis stored the same finding at the same moment
                if attempt == 2:
                    raise
        for node in changed:
            _tell(node)
    return len(pending)


def _tell(node: Node) -> None:
    """Publish a node's change; a channel layer that is down loses live updates, not the diagnosis."""
    try:
        live.node_changed(node.pk, node.group, findings_changed=True)
    except Exception:
        log.warning("could not publish the change of %s", node, exc_info=True)


_SUMMARY_FIELDS = (
    "health",
    "health_rank",
    "critical_count",
    "warning_count",
    "info_count",
    "unknown_count",
    "open_checks",
)


def _store(runs: dict[int, list[EngineFinding]], checks_run: set[str] | None) -> list[Node]:
    """Reconcile these nodes' findings under a lock on their rows; return the nodes whose findings changed.

    A constant number of queries for the batch (``reconcile_many``).
    """
    with transaction.atomic():
        nodes = list(
            Node.objects.select_for_update(of=("self",))
            .select_related("cluster")
            .filter(pk__in=list(runs))
            .order_by("pk")  # one order for every locker: no deadlock between two batches
        )
        changes = reconcile_many([(node, runs[node.pk]) for node in nodes], checks_run)
        written: list[Node] = []
        for node in nodes:
            node_changes = changes[node.pk]
            refresh_summary(node, node_changes.open)
            if node_changes.any or node_changes.updated:
                node.version += 1
                if node_changes.any:
                    written.append(node)
        _save_summaries(nodes)
        return written


def _save_summaries(nodes: list[Node]) -> None:
    """Write the nodes' summaries and versions in one statement run for every row.

    ``bulk_update`` would do it in a few queries too, but builds a CASE expression per row and
    field in Python: seconds for a thousand nodes, more than the checks themselves.
    """
    if not nodes:
        return
    wanted = {*_SUMMARY_FIELDS, "version"}
    fields = [f for f in Node._meta.concrete_fields if f.name in wanted]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in fields)
    sql = f"UPDATE {quote(Node._meta.db_table)} SET {assignments} WHERE {quote(str(Node._meta.pk.column))} = %s"
    rows = [[f.get_db_prep_save(getattr(n, f.attname), connection) for f in fields] + [n.pk] for n in nodes]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def check_workloads(cluster: Cluster, pods: Iterable[tuple[str, str]]) -> int:
    """Run the workload checks on these pods (namespace, name) and replace their stored findings.

    A pod that is no longer stored loses its findings. Returns the number of findings now open.
    """
    keys = list(pods)
    if not keys:
        return 0
    checks = workload_checks()
    source = api_source(cluster.name)
    now = timezone.now()
    rows: list[WorkloadFinding] = []
    stored = {
        (ns, name): (node_name, data)
        for ns, name, node_name, data in ApiObject.objects.filter(
            cluster=cluster, kind="Pod", namespace__in={k[0] for k in keys}, name__in={k[1] for k in keys}
        ).values_list("namespace", "name", "node_name", "data")
    }
    windows_nodes = set(
        ApiObject.objects.filter(cluster=cluster, kind="Node", windows=True).values_list("name", flat=True)
    )
    for key in keys:
        if key not in stored:
            continue
        node_name, data = stored[key]
        bound = node_name in windows_nodes
        snap = NodeSnapshot(
            node=node_name or "",
            cluster=cluster.name,
            pods=Fact((data,), source) if bound else Fact((), source),
            workloads=() if bound else (data,),
        )
        for finding in run_iter(snap, checks):
            if finding.status is not Status.FAIL:
                continue
            rows.append(
                WorkloadFinding(
                    cluster=cluster,
                    kind="Pod",
                    namespace=key[0],
                    name=key[1],
                    node_name=node_name,
                    check_id=finding.check,
                    subject=finding.subject[:400],
                    severity=finding.severity.slug,
                    status=finding.status.slug,
                    title=finding.title[:300],
                    summary=finding.summary,
                    evidence=[e.to_dict() for e in finding.evidence],
                    fix=list(finding.fix),
                    docs=finding.docs,
                    first_seen=now,
                    last_seen=now,
                )
            )
    with transaction.atomic():
        first_seen = _first_seen(cluster, keys)
        for row in rows:
            row.first_seen = first_seen.get((row.namespace, row.name, row.check_id, row.subject), now)
        _delete_for(cluster, keys)
        WorkloadFinding.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    return len(rows)


def _pod_filter(cluster: Cluster, keys: list[tuple[str, str]]) -> QuerySet[WorkloadFinding]:
    """A superset of the keys' findings (namespace in ..., name in ...); callers keep the exact pairs."""
    return WorkloadFinding.objects.filter(
        cluster=cluster, kind="Pod", namespace__in={k[0] for k in keys}, name__in={k[1] for k in keys}
    )


def _first_seen(cluster: Cluster, keys: list[tuple[str, str]]) -> dict[tuple[str, str, str, str], datetime]:
    wanted = set(keys)
    return {
        (ns, name, check_id, subject): seen
        for ns, name, check_id, subject, seen in _pod_filter(cluster, keys).values_list(
            "namespace", "name", "check_id", "subject", "first_seen"
        )
        if (ns, name) in wanted
    }


def _delete_for(cluster: Cluster, keys: list[tuple[str, str]]) -> None:
    wanted = set(keys)
    rows = _pod_filter(cluster, keys).values_list("pk", "namespace", "name")
    ids = [pk for pk, ns, name in rows if (ns, name) in wanted]
    for start in range(0, len(ids), 500):
        WorkloadFinding.objects.filter(pk__in=ids[start : start + 500]).delete()


def check_all_workloads(cluster: Cluster) -> int:
    """Every stored pod of the cluster (after a full list); findings of pods no longer stored are dropped."""
    keys = list(ApiObject.objects.filter(cluster=cluster, kind="Pod").values_list("namespace", "name"))
    total = 0
    for start in range(0, len(keys), 500):
        total += check_workloads(cluster, keys[start : start + 500])
    stored = set(keys)
    orphans = [
        pk
        for pk, ns, name in WorkloadFinding.objects.filter(cluster=cluster).values_list("pk", "namespace", "name")
        if (ns, name) not in stored
    ]
    for start in range(0, len(orphans), 500):
        WorkloadFinding.objects.filter(pk__in=orphans[start : start + 500]).delete()
    return total
