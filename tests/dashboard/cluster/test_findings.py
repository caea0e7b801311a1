"""``reconcile_many``: many nodes' findings stored as ``reconcile`` stores each, in a constant number of queries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard import lifecycle
from dashboard.diagnosis import Changes, reconcile, reconcile_many
from dashboard.models import Finding, Node, enroll
from dashboard.monitoring import Delivery, FindingEvent, NotificationChannel
from diagnostics.model import Severity
from tests.dashboard.test_lifecycle import SUBNET, failing

pytestmark = pytest.mark.django_db

ENDPOINTS = "hns.endpoint-state"
SKEW = "node.version-skew"
DRIFT = "node.config-drift"
RUN = {SUBNET, ENDPOINTS, DRIFT}  # the checks of the last run; SKEW is not among them


def with_history(cluster: str, names: list[str]) -> list[Node]:
    """Nodes with a past: a silenced finding since resolved, one still failing, one of a check not re-run."""
    nodes = [enroll(cluster, name)[0] for name in names]
    for node in nodes:
        reconcile(node, [failing(), failing(ENDPOINTS, Severity.WARNING), failing(DRIFT, Severity.INFO, "os_build")])
        lifecycle.silence(node.findings.get(check_id=SUBNET), None, timedelta(hours=4), "maintenance window")
        reconcile(
            node,
            [
                failing(ENDPOINTS, Severity.WARNING),
                failing(SKEW, Severity.WARNING, "kubelet"),
                failing(DRIFT, Severity.INFO, "os_build"),
            ],
        )
    return nodes


def last_run(node: Node) -> list[Any]:
    """What the last run finds on ``node``: the silenced failure is back, one changed, one new, one gone."""
    return [
        failing(),
        failing(ENDPOINTS, Severity.CRITICAL),
        failing(DRIFT, Severity.WARNING, f"runtime_version-{node.name[-1]}"),
    ]


def stored(node: Node) -> list[tuple[Any, ...]]:
    rows = node.findings.order_by("check_id", "subject", "occurrence")
    return [
        (
            f.check_id,
            f.subject,
            f.severity,
            f.status,
            f.summary,
            f.occurrence,
            f.seen_count,
            f.resolved_at is None,
            f.silenced_until is not None,
            f.silence_note,
        )
        for f in rows
    ]


def events(node: Node) -> list[tuple[str, str, str, int]]:
    rows = FindingEvent.objects.filter(node=node).select_related("finding").order_by("id")
    return [(e.kind, e.finding.check_id, e.finding.subject, Delivery.objects.filter(event=e).count()) for e in rows]


def outline(changes: Changes) -> dict[str, list[tuple[str, str]]]:
    return {
        name: sorted((f.check_id, f.subject) for f in getattr(changes, name))
        for name in ("opened", "updated", "resolved", "still_open")
    }


@pytest.fixture(autouse=True)
def channel() -> NotificationChannel:
    return NotificationChannel.objects.create(
        name="ops", kind="webhook", target="http://127.0.0.1:1/hook", min_severity="warning"
    )


def test_it_stores_what_reconcile_stores_node_by_node() -> None:
    one_by_one = with_history("prod-eu", ["win-a1", "win-a2", "win-a3"])
    together = with_history("prod-us", ["win-a1", "win-a2", "win-a3"])
    expected = {node.name: outline(reconcile(node, last_run(node), RUN)) for node in one_by_one}
    changes = reconcile_many([(node, last_run(node)) for node in together], RUN)
    assert {node.name: outline(changes[node.pk]) for node in together} == expected
    for mine, theirs in zip(together, one_by_one, strict=True):
        assert stored(mine) == stored(theirs)
        assert events(mine) == events(theirs)
    reopened = together[0].findings.get(check_id=SUBNET, resolved_at__isnull=True)
    assert reopened.occurrence == 2 and reopened.silence_note == "silence carried over from the previous occurrence"
    assert together[0].findings.get(check_id=SKEW).resolved_at is None  # not re-run: still open


def test_it_resolves_everything_absent_when_every_check_ran() -> None:
    one_by_one = with_history("prod-eu", ["win-b1"])
    together = with_history("prod-us", ["win-b1"])
    reconcile(one_by_one[0], [])
    assert reconcile_many([(together[0], [])])[together[0].pk].resolved
    assert stored(together[0]) == stored(one_by_one[0])
    assert not together[0].findings.filter(resolved_at__isnull=True).exists()


def test_nothing_is_written_for_no_nodes() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert reconcile_many([]) == {}
    assert len(queries) == 0


def test_twenty_nodes_take_as_many_queries_as_one() -> None:
    one = with_history("prod-eu", ["win-c1"])
    twenty = with_history("prod-us", [f"win-c{i:02d}" for i in range(20)])
    with CaptureQueriesContext(connection) as for_one:
        reconcile_many([(node, last_run(node)) for node in one], RUN)
    with CaptureQueriesContext(connection) as for_twenty:
        reconcile_many([(node, last_run(node)) for node in twenty], RUN)
    assert len(for_twenty) == len(for_one)
    assert Finding.objects.filter(node__in=twenty, check_id=SUBNET, resolved_at__isnull=True).count() == 20
