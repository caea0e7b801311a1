"""Notifications against a real HTTP receiver on 127.0.0.1: one message per transition, retries, formats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from dashboard import notify
from dashboard.diagnosis import reconcile
from dashboard.models import Node, enroll
from dashboard.monitoring import Delivery, NotificationChannel
from diagnostics.model import Severity
from tests.dashboard.test_lifecycle import failing
from tests.receiver import Receiver, receiving

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def node(db: Any) -> Node:
    return enroll("prod-eu", "win-node-01")[0]


def channel(receiver: Receiver, kind: str = "webhook", min_severity: str = "warning", name: str = "ops") -> Any:
    return NotificationChannel.objects.create(name=name, kind=kind, target=receiver.url, min_severity=min_severity)


def send_everything() -> None:
    notify.deliver_many(Delivery.objects.values_list("pk", flat=True))


def test_many_runs_of_a_persisting_finding_send_one_message_per_transition(node: Node, receiver: Receiver) -> None:
    channel(receiver)
    for _ in range(5):
        reconcile(node, [failing()])
        send_everything()
    for _ in range(3):
        reconcile(node, [])
        send_everything()
    bodies = receiver.bodies()
    assert [b["event"] for b in bodies] == ["finding.opened", "finding.resolved"]
    opened, resolved = bodies
    assert opened["finding"]["check"] == "flannel.subnet-env-missing"
    assert opened["finding"]["severity"] == "critical"
    assert opened["node"] == "win-node-01" and opened["cluster"] == "prod-eu"
    assert opened["url"].endswith("/clusters/prod-eu/nodes/win-node-01/")
    assert resolved["finding"]["resolved_at"] is not None
    assert {r.headers["x-wnd-delivery"] for r in receiver.received} == {str(b["delivery"]) for b in bodies}
    assert set(Delivery.objects.values_list("state", flat=True)) == {"sent"}


def test_a_delivery_is_sent_by_one_sender_only(node: Node, receiver: Receiver) -> None:
    channel(receiver)
    reconcile(node, [failing()])
    delivery = Delivery.objects.get()
    assert notify.deliver(delivery.pk) == "sent"
    assert notify.deliver(delivery.pk) is None  # claimed and sent: nothing left to do
    assert notify.claim(delivery.pk, timezone.now()) is False
    assert len(receiver.bodies()) == 1


def test_a_channel_hears_only_severities_at_or_above_its_threshold(node: Node, receiver: Receiver) -> None:
    channel(receiver, min_severity="critical")
    reconcile(node, [failing("hns.endpoint-state", Severity.WARNING), failing()])
    send_everything()
    assert [b["finding"]["check"] for b in receiver.bodies()] == ["flannel.subnet-env-missing"]


def test_unknown_findings_are_not_notified(node: Node, receiver: Receiver) -> None:
    from dataclasses import replace

    from diagnostics.model import Status

    channel(receiver)
    reconcile(node, [replace(failing(), status=Status.UNKNOWN)])
    assert Delivery.objects.count() == 0


def test_a_failed_send_is_retried_with_backoff_until_it_goes_through(node: Node, receiver: Receiver) -> None:
    channel(receiver)
    receiver.statuses = [503, 500]
    reconcile(node, [failing()])
    delivery = Delivery.objects.get()
    assert notify.deliver(delivery.pk) == "pending"
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.response_code == 503 and "503" in delivery.last_error
    first_wait = delivery.next_attempt_at - timezone.now()
    assert timedelta(seconds=25) < first_wait <= timedelta(seconds=30)
    assert notify.deliver(delivery.pk) is None  # not due yet
    assert notify.deliver_due(timezone.now() + timedelta(seconds=31)) == {"pending": 1}
    delivery.refresh_from_db()
    assert delivery.next_attempt_at - timezone.now() > timedelta(seconds=55)  # doubled
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert notify.deliver_due() == {"sent": 1}
    delivery.refresh_from_db()
    assert delivery.state == "sent" and delivery.attempts == 3 and delivery.last_error == ""
    assert len(receiver.bodies()) == 1


def test_a_refusal_is_final_and_a_dead_receiver_is_retried(node: Node, receiver: Receiver, settings: Any) -> None:
    settings.WND_NOTIFY_MAX_ATTEMPTS = 2
    channel(receiver)
    NotificationChannel.objects.create(name="gone", kind="webhook", target="http://127.0.0.1:9/hook")
    receiver.statuses = [404]
    reconcile(node, [failing()])
    send_everything()
    refused = Delivery.objects.get(channel__name="ops")
    unreachable = Delivery.objects.get(channel__name="gone")
    assert refused.state == "failed" and refused.response_code == 404
    assert unreachable.state == "pending" and "cannot reach 127.0.0.1:9" in unreachable.last_error
    Delivery.objects.filter(pk=unreachable.pk).update(next_attempt_at=timezone.now())
    notify.deliver_due()
    unreachable.refresh_from_db()
    assert unreachable.state == "failed" and unreachable.attempts == 2


def test_a_delivery_left_sending_by_a_dead_worker_is_sent_by_the_sweep(node: Node, receiver: Receiver) -> None:
    channel(receiver)
    reconcile(node, [failing()])
    stuck_since = timezone.now() - notify.CLAIM_TIMEOUT - timedelta(seconds=1)
    Delivery.objects.update(state="sending", claimed_at=stuck_since)
    assert notify.deliver_due() == {"sent": 1}
    assert len(receiver.bodies()) == 1


def test_slack_and_teams_channels_get_their_own_shapes(node: Node, receiver: Receiver) -> None:
    channel(receiver, "slack", name="slack")
    channel(receiver, "teams", name="teams")
    reconcile(node, [failing()])
    send_everything()
    by_shape = {("slack" if "text" in b else "teams"): b for b in receiver.bodies()}
    slack = by_shape["slack"]
    assert slack["text"].startswith("Opened [critical]")
    assert "<http://" in slack["attachments"][0]["text"] and slack["attachments"][0]["color"] == "#b42318"
    teams = by_shape["teams"]
    assert teams["type"] == "message"
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert card["content"]["actions"][0]["url"].endswith("/clusters/prod-eu/nodes/win-node-01/")


def test_an_email_channel_sends_mail(node: Node) -> None:
    NotificationChannel.objects.create(name="mail", kind="email", target="oncall@example.com, sre@example.com")
    reconcile(node, [failing()])
    send_everything()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["oncall@example.com", "sre@example.com"]
    assert message.subject.startswith("Opened [critical]")
    assert "flannel.subnet-env-missing" in message.body


def test_the_test_button_sends_now_and_logs_the_delivery(client: Any, operator: Any, receiver: Receiver) -> None:
    ops = channel(receiver)
    client.force_login(operator)
    response = client.post(f"/notifications/{ops.pk}/test", follow=True)
    assert "Test sent" in response.content.decode()
    assert receiver.bodies()[0]["event"] == "test"
    receiver.statuses = [500]
    response = client.post(f"/notifications/{ops.pk}/test", follow=True)
    html = response.content.decode()
    assert "failed: HTTP 500" in html
    assert list(Delivery.objects.order_by("id").values_list("test", "state")) == [(True, "sent"), (True, "failed")]


def test_the_notifications_page_is_read_only_for_viewers(client: Any, viewer: Any, operator: Any) -> None:
    NotificationChannel.objects.create(
        name="slack", kind="slack", target="https://hooks.slack.com/services/T0/B0/secret"
    )
    client.force_login(viewer)
    html = client.get("/notifications").content.decode()
    assert "hooks.slack.com/…" in html and "secret" not in html and "Add a channel" not in html
    assert client.post("/notifications/new", {"name": "x", "kind": "webhook", "target": "http://x"}).status_code == 403
    client.force_login(operator)
    bad = client.post(
        "/notifications/new", {"name": "x", "kind": "webhook", "target": "ftp://x", "min_severity": "info"}
    )
    assert bad.status_code == 400 and "http:// or https://" in bad.content.decode()
    good = client.post(
        "/notifications/new",
        {"name": "ops", "kind": "webhook", "target": "https://hooks.example/x", "min_severity": "info"},
    )
    assert good.status_code == 302
    assert NotificationChannel.objects.get(name="ops").created_by == operator
