"""``diagnosis.reconcile`` for many nodes at once, as cluster-wide re-checks need it.

A change on the API side (a node's versions, the server's version, a slice) can re-run a
check on every Windows node of a cluster. Reconciling them one by one costs a handful of
queries per node; ``reconcile_many`` makes the same decisions (``diagnosis.compare_findings``)
and applies the same lifecycle rules (``lifecycle.prepare_opened``, ``record_transitions``)
with a constant number of queries for the whole set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.utils import timezone

from dashboard.diagnosis import Changes, compare_findings, write_changes
from dashboard.lifecycle import prepare_opened, record_transitions
from dashboard.models import Finding, Node
from diagnostics.model import Finding as EngineFinding


def reconcile_many(
    runs: Sequence[tuple[Node, Iterable[EngineFinding]]], checks_run: set[str] | None = None
) -> dict[int, Changes]:
    """``reconcile`` of each (node, findings) pair; the changes by node id.

    Same results as calling ``reconcile`` on each node in turn (nodes must be distinct), in a
    constant number of queries whatever the number of nodes and findings (Django splits a bulk
    statement only past the database's parameter limit). Call inside a transaction that holds
    the nodes' rows.
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
