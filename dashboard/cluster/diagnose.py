"""Checks re-run when the API side changes: nodes (with or without an agent) and workloads.

Plain, idempotent functions: the watcher calls them for what a change affects, and tests and
the bench call them directly. Which checks a change re-runs follows from what each check
reads (``diagnostics.registry.checks_reading``); the snapshots come from the one builder
(``snapshots.stored_snapshots``) and the findings go to the one store (``diagnosis.store_findings``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from functools import cache

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from dashboard.cluster.models import ApiObject, WorkloadFinding
from dashboard.cluster.snapshot import api_source
from dashboard.diagnosis import store_findings
from dashboard.models import Cluster, Finding, Node
from dashboard.snapshots import stored_snapshots
from diagnostics.model import Finding as EngineFinding
from diagnostics.model import Status
from diagnostics.registry import all_checks, checks_reading, run_iter
from diagnostics.snapshot import Fact, NodeSnapshot

log = logging.getLogger(__name__)

# What a change on the API side re-runs on every Windows node, from what the checks read:
# a Service or an EndpointSlice changed,
ENDPOINT_CHECKS = checks_reading("services")
# another Windows node or the API server's version changed.
PEER_CHECKS = checks_reading("peers", "server")
# Nodes whose findings are stored in one transaction: few queries, short locks.
STORE_BATCH = 200


@cache
def workload_checks() -> tuple[str, ...]:
    """Ids of the checks that judge one pod or controller on its own (they read the workloads only)."""
    return tuple(sorted(cid for cid, spec in all_checks().items() if spec.reads == {"workloads"}))


def recheck_nodes(
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
    snaps = stored_snapshots(nodes, checks=wanted)
    stored: dict[int, set[tuple[str, ...]]] = {n.pk: set() for n in nodes}
    rows = Finding.objects.filter(node__in=nodes, resolved_at__isnull=True)
    if wanted is not None:
        rows = rows.filter(check_id__in=wanted)
    for row in rows.values_list("node_id", "check_id", "subject", "severity", "status", "summary"):
        stored[row[0]].add(tuple(row[1:]))
    pending: list[tuple[Node, list[EngineFinding]]] = []  # nodes whose findings differ from those stored
    for node in nodes:
        snap = snaps.get(node.pk)
        if snap is None:
            continue
        findings = list(run_iter(snap, wanted))
        if not node.has_agent:
            findings = [f for f in findings if f.status is Status.FAIL]
        found = {(f.check, f.subject[:400], f.severity.slug, f.status.slug, f.summary) for f in findings}
        if found == stored[node.pk]:
            continue  # nothing new to store or show
        pending.append((node, findings))
    checks_run = set(wanted) if wanted is not None else None
    for start in range(0, len(pending), STORE_BATCH):
        batch = pending[start : start + STORE_BATCH]
        for attempt in (1, 2):
            try:
                store_findings(batch, checks_run)
                break
            except IntegrityError:  # a report's check stored the same finding at the same moment
                if attempt == 2:
                    raise
    return len(pending)


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


def check_all_workloads(cluster: Cluster, *, stop: threading.Event | None = None) -> int:
    """Every stored pod of the cluster (after a full list); findings of pods no longer stored are dropped.

    With ``stop``, returns early between batches once it is set (the watcher is stopping).
    """
    keys = list(ApiObject.objects.filter(cluster=cluster, kind="Pod").values_list("namespace", "name"))
    total = 0
    for start in range(0, len(keys), 500):
        if stop is not None and stop.is_set():
            return total
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
