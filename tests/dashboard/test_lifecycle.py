"""A finding's life: open, persist, resolve, come back; acknowledge and silence; timelines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from dashboard import lifecycle
from dashboard.diagnosis import reconcile
from dashboard.models import Finding, Node, enroll
from dashboard.monitoring import Delivery, FindingEvent, NotificationChannel
from diagnostics.model import Evidence, Severity, Status
from diagnostics.model import Finding as EngineFinding

pytestmark = pytest.mark.django_db

SUBNET = "flannel.subnet-env-missing"


def failing(check: str = SUBNET, severity: Severity = Severity.CRITICAL, subject: str = "") -> EngineFinding:
    return EngineFinding(
        check=check,
        severity=severity,
        status=Status.FAIL,
        node="win-node-01",
        cluster="prod-eu",
        title="C:\\run\\flannel\\subnet.env is missing",
        summary="flanneld has not written subnet.env: every pod sandbox fails.",
        evidence=(Evidence("files/subnet.env", "absent"),),
        fix=("Start-Service flanneld",),
        subject=subject,
    )


@pytest.fixture
def node(db: Any) -> Node:
    return enroll("prod-eu", "win-node-01")[0]


def kinds(node: Node) -> list[str]:
    return list(FindingEvent.objects.filter(node=node).order_by("id").values_list("kind", flat=True))


def test_a_first_failure_opens_a_finding_and_records_it(node: Node) -> None:
    changes = reconcile(node, [failing()])
    assert [f.check_id for f in changes.opened] == [SUBNET]
    finding = Finding.objects.get()
    assert finding.is_open and finding.occurrence == 1 and finding.seen_count == 1
    assert kinds(node) == ["opened"]


def test_a_persisting_failure_updates_the_same_finding_without_new_events(node: Node) -> None:
    reconcile(node, [failing()])
    first = Finding.objects.get()
    for _ in range(3):
        changes = reconcile(node, [failing()])
        assert not changes.any
    finding = Finding.objects.get()
    assert finding.pk == first.pk
    assert finding.seen_count == 4
    assert finding.last_seen >= first.last_seen
    assert kinds(node) == ["opened"]


def test_a_passing_run_resolves_the_finding(node: Node) -> None:
    reconcile(node, [failing()])
    changes = reconcile(node, [])
    assert len(changes.resolved) == 1
    assert Finding.objects.get().resolved_at is not None
    assert kinds(node) == ["opened", "resolved"]


def test_a_run_of_other_checks_leaves_the_finding_open(node: Node) -> None:
    reconcile(node, [failing()])
    changes = reconcile(node, [], {"hns.network-missing"})
    assert not changes.resolved
    assert Finding.objects.get().is_open


def test_a_finding_that_comes_back_is_a_new_occurrence_and_the_history_shows_both(node: Node) -> None:
    reconcile(node, [failing()])
    reconcile(node, [])
    reconcile(node, [failing()])
    rows = list(Finding.objects.order_by("id"))
    assert [(r.occurrence, r.is_open) for r in rows] == [(1, False), (2, True)]
    assert kinds(node) == ["opened", "resolved", "reopened"]
    reconcile(node, [])
    reconcile(node, [failing()])
    assert Finding.objects.get(resolved_at__isnull=True).occurrence == 3


def test_subjects_of_one_check_live_separately(node: Node) -> None:
    reconcile(
        node,
        [
            failing("hns.endpoint-state", Severity.WARNING, "ep-1"),
            failing("hns.endpoint-state", Severity.WARNING, "ep-2"),
        ],
    )
    reconcile(node, [failing("hns.endpoint-state", Severity.WARNING, "ep-2")])
    open_subjects = set(Finding.objects.filter(resolved_at__isnull=True).values_list("subject", flat=True))
    assert open_subjects == {"ep-2"}


def test_an_operator_acknowledges_an_open_finding_with_a_note(node: Node, operator: Any) -> None:
    reconcile(node, [failing()])
    finding = Finding.objects.get()
    lifecycle.acknowledge(finding, operator, "  INC-4711: olivia restarts flanneld  ")
    finding.refresh_from_db()
    assert finding.acknowledged_by == operator
    assert finding.ack_note == "INC-4711: olivia restarts flanneld"
    event = FindingEvent.objects.get(kind="acknowledged")
    assert event.user == operator and event.note == finding.ack_note


def test_a_resolved_finding_cannot_be_acknowledged(node: Node, operator: Any) -> None:
    reconcile(node, [failing()])
    reconcile(node, [])
    with pytest.raises(ValueError, match="already resolved"):
        lifecycle.acknowledge(Finding.objects.get(), operator, "too late")


def test_an_acknowledgement_does_not_carry_over_to_a_new_occurrence(node: Node, operator: Any) -> None:
    reconcile(node, [failing()])
    lifecycle.acknowledge(Finding.objects.get(), operator, "on it")
    reconcile(node, [])
    reconcile(node, [failing()])
    assert Finding.objects.get(resolved_at__isnull=True).acknowledged_at is None


def test_a_silence_holds_notifications_back_and_carries_over_to_a_flapping_finding(node: Node, operator: Any) -> None:
    NotificationChannel.objects.create(name="ops", kind="webhook", target="http://127.0.0.1:9/hook")
    reconcile(node, [failing()])
    assert Delivery.objects.count() == 1
    lifecycle.silence(Finding.objects.get(), operator, timedelta(hours=4), "maintenance window")
    reconcile(node, [])
    reconcile(node, [failing()])
    back = Finding.objects.get(resolved_at__isnull=True)
    assert back.silenced and back.occurrence == 2
    assert Delivery.objects.count() == 1  # neither the resolution nor the return was notified
    assert kinds(node) == ["opened", "silenced", "resolved", "reopened"]


def test_an_expired_silence_ends_and_notifies_what_it_held_back_once(node: Node, operator: Any) -> None:
    NotificationChannel.objects.create(name="ops", kind="webhook", target="http://127.0.0.1:9/hook")
    reconcile(node, [failing("node.components-not-running")])
    lifecycle.silence(Finding.objects.get(), operator, timedelta(hours=1))
    Delivery.objects.all().delete()  # sent before the silence began: not what this test watches
    reconcile(node, [])
    reconcile(node, [failing("node.components-not-running")])  # came back while silenced
    assert Delivery.objects.count() == 0

    later = timezone.now() + timedelta(hours=2)
    assert lifecycle.expire_silences(later) == 1
    assert lifecycle.expire_silences(later) == 0  # idempotent
    back = Finding.objects.get(resolved_at__isnull=True)
    assert back.silenced_until is None
    delivery = Delivery.objects.get()
    assert delivery.event.finding == back and delivery.event.kind == "reopened"
    assert FindingEvent.objects.filter(kind="unsilenced", finding=back).count() == 1


def test_a_silence_that_ended_by_hand_notifies_an_unnotified_finding(node: Node, operator: Any) -> None:
    NotificationChannel.objects.create(name="ops", kind="webhook", target="http://127.0.0.1:9/hook")
    reconcile(node, [failing()])
    finding = Finding.objects.get()
    lifecycle.silence(finding, operator, timedelta(hours=1))
    assert lifecycle.unsilence(finding, operator) is not None
    assert Delivery.objects.count() == 1  # the opening was already delivered: no second message
    assert lifecycle.unsilence(finding, operator) is None


def test_a_silence_must_last_some_time(node: Node, operator: Any) -> None:
    reconcile(node, [failing()])
    with pytest.raises(ValueError, match="some time"):
        lifecycle.silence(Finding.objects.get(), operator, timedelta(0))


def test_dashboard_side_findings_are_resolved_only_by_a_run_that_names_them(node: Node) -> None:
    reconcile(node, [failing("node.agent-stale", Severity.WARNING)], {"node.agent-stale"})
    reconcile(node, [])  # a report's full run of the engine's checks
    assert Finding.objects.get(check_id="node.agent-stale").is_open
    reconcile(node, [], {"node.agent-stale"})
    assert not Finding.objects.get(check_id="node.agent-stale").is_open


def test_the_node_page_shows_the_timeline_and_the_lifecycle_controls(
    client: Any, node: Node, operator: Any, viewer: Any
) -> None:
    reconcile(node, [failing()])
    reconcile(node, [])
    reconcile(node, [failing()])
    lifecycle.acknowledge(Finding.objects.get(resolved_at__isnull=True), operator, "INC-4711")
    client.force_login(viewer)
    html = client.get(node.get_absolute_url()).content.decode()
    assert 'id="node-history"' in html
    assert html.count("event-resolved") == 1 and html.count("event-reopened") == 1
    assert "Acknowledged by olivia" in html and "INC-4711" in html
    assert "Acknowledge or silence" not in html  # viewers read only
    client.force_login(operator)
    assert "Acknowledge or silence" in client.get(node.get_absolute_url()).content.decode()


def test_an_operator_acknowledges_and_silences_from_the_node_page(client: Any, node: Node, operator: Any) -> None:
    reconcile(node, [failing()])
    finding = Finding.objects.get()
    client.force_login(operator)
    response = client.post(f"/findings/{finding.pk}/acknowledge", {"note": "on it"})
    assert response.status_code == 302 and response["Location"] == node.get_absolute_url()
    response = client.post(f"/findings/{finding.pk}/silence", {"hours": "4", "note": "window"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    finding.refresh_from_db()
    assert finding.ack_note == "on it" and finding.silenced
    assert client.post(f"/findings/{finding.pk}/silence", {"hours": "5"}, HTTP_HX_REQUEST="true").status_code == 400


def test_a_viewer_cannot_acknowledge(client: Any, node: Node, viewer: Any) -> None:
    reconcile(node, [failing()])
    client.force_login(viewer)
    assert client.post(f"/findings/{Finding.objects.get().pk}/acknowledge", {"note": "x"}).status_code == 403
    assert Finding.objects.get().acknowledged_at is None


def test_the_fleet_history_counts_transitions_in_the_window(client: Any, node: Node, viewer: Any) -> None:
    reconcile(node, [failing()])
    reconcile(node, [])
    reconcile(node, [failing("hns.network-missing")])
    old = FindingEvent.objects.filter(kind="opened").order_by("id").first()
    assert old is not None
    FindingEvent.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=3))
    client.force_login(viewer)
    day = client.get("/history").context
    assert day["counts"] == {"opened": 1, "reopened": 0, "resolved": 1}
    week = client.get("/history", {"window": "7d"}).context
    assert week["counts"] == {"opened": 2, "reopened": 0, "resolved": 1}
    html = client.get("/history", {"window": "7d", "cluster": "prod-eu"}).content.decode()
    assert "hns.network-missing" in html and "prod-eu/win-node-01" in html
    assert client.get("/history", {"cluster": "elsewhere"}).context["counts"]["resolved"] == 0
