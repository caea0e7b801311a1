"""Notifications: a finding opened, came back or resolved, told to webhooks, Slack, Teams and email.

Delivery is an outbox. ``enqueue`` writes one ``Delivery`` row per (transition, channel)
in the transaction that records the transition; a unique constraint makes a second
row for the same pair impossible, so however many runs see a finding, one message goes
out per transition. ``deliver`` claims a row with one conditional UPDATE (only one
sender wins), sends it, and records the answer; a failure is retried with exponential
backoff up to ``WND_NOTIFY_MAX_ATTEMPTS`` times. A row left ``sending`` by a worker that
died is claimed again after ``CLAIM_TIMEOUT``: delivery is at least once, and webhook
receivers get an ``X-WND-Delivery`` id to drop the rare duplicate.

Only failures notify (status ``fail``): "not enough data" findings are for the pages.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from dashboard import queue
from dashboard.models import Finding
from dashboard.monitoring import Delivery, FindingEvent, NotificationChannel
from diagnostics.model import Severity, Status

log = logging.getLogger(__name__)

CLAIM_TIMEOUT = timedelta(minutes=5)
BACKOFF_BASE = 30.0  # seconds before the first retry; doubled after each failure
BACKOFF_MAX = 3600.0
USER_AGENT = "windows-node-doctor"
COLOURS = {"critical": "#b42318", "warning": "#8a5a00", "info": "#1d5fa8", "resolved": "#17703b"}
TEAMS_STYLE = {"critical": "attention", "warning": "warning", "info": "accent", "resolved": "good"}


class DeliveryError(Exception):
    """A send that failed; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.status = status


# -- queueing -----------------------------------------------------------------


def enqueue(events: Iterable[FindingEvent], now: datetime) -> list[int]:
    """Queue a delivery of each transition to every channel that wants it; return the new ids.

    Call inside the transaction that wrote the events: the sending starts after commit.
    """
    wanted = [e for e in events if e.kind in FindingEvent.TRANSITIONS and _notifiable(e.finding, now)]
    if not wanted:
        return []
    channels = list(NotificationChannel.objects.filter(enabled=True))
    rows = [
        Delivery(channel=c, event=e, next_attempt_at=now, created_at=now)
        for e in wanted
        for c in channels
        if c.wants(e.finding.severity)
    ]
    if not rows:
        return []
    # Conflicts are transitions a channel already has: the de-duplication at work.
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    ids = list(
        Delivery.objects.filter(event__in=[e.pk for e in wanted], state=Delivery.PENDING, attempts=0).values_list(
            "pk", flat=True
        )
    )
    transaction.on_commit(lambda: _send_soon(ids))
    return ids


def _notifiable(finding: Finding, now: datetime) -> bool:
    return finding.status == Status.FAIL.slug and not finding.silenced_at(now)


def _send_soon(ids: list[int]) -> None:
    try:
        queue.send(queue.DELIVER_NOTIFICATIONS, ids)
    except Exception:  # the broker is down: the periodic sweep sends them later
        log.warning("could not queue the sending of %d notification(s); the next sweep will", len(ids))


# -- messages -----------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """What one notification says, before a channel's format."""

    delivery_id: int
    event: str  # finding.opened | finding.reopened | finding.resolved | test
    severity: str
    title: str
    summary: str
    cluster: str
    node: str
    check: str
    subject: str
    url: str
    at: datetime
    finding: dict[str, Any]

    @property
    def headline(self) -> str:
        if self.event == "test":
            return "Test notification from Windows Node Doctor"
        verb = {"finding.opened": "Opened", "finding.reopened": "Came back", "finding.resolved": "Resolved"}[self.event]
        return f"{verb} [{self.severity}] {self.title} on {self.cluster}/{self.node}"

    @property
    def tone(self) -> str:
        return "resolved" if self.event == "finding.resolved" else self.severity


def public_url(path: str) -> str:
    return settings.WND_PUBLIC_URL.rstrip("/") + path


def message_for(delivery: Delivery) -> Message:
    now = timezone.now()
    if delivery.event is None:
        return Message(
            delivery.pk,
            "test",
            Severity.INFO.slug,
            "Test notification",
            f"Channel {delivery.channel.name} works: this is what a notification looks like.",
            "",
            "",
            "",
            "",
            public_url("/notifications"),
            now,
            {},
        )
    event = delivery.event
    finding = event.finding
    node = finding.node
    return Message(
        delivery_id=delivery.pk,
        event=f"finding.{event.kind}",
        severity=finding.severity,
        title=finding.title,
        summary=finding.summary,
        cluster=node.cluster.name,
        node=node.name,
        check=finding.check_id,
        subject=finding.subject,
        url=public_url(node.get_absolute_url()),
        at=event.at,
        finding={
            **finding.to_engine().to_dict(),
            "id": finding.pk,
            "occurrence": finding.occurrence,
            "first_seen": finding.first_seen.isoformat(),
            "resolved_at": finding.resolved_at.isoformat() if finding.resolved_at else None,
        },
    )


def webhook_body(msg: Message) -> dict[str, Any]:
    """The generic webhook's JSON: the event, and the finding in ``findings/v1`` shape."""
    return {
        "format": "wnd-notification/v1",
        "delivery": msg.delivery_id,
        "event": msg.event,
        "at": msg.at.isoformat(),
        "cluster": msg.cluster,
        "node": msg.node,
        "url": msg.url,
        "text": msg.headline,
        "finding": msg.finding or None,
    }


def slack_body(msg: Message) -> dict[str, Any]:
    """Slack's incoming-webhook shape (also accepted by Mattermost and Rocket.Chat)."""
    lines = [f"*{msg.headline}*", msg.summary]
    if msg.check:
        lines.append(f"`{msg.check}`" + (f" · {msg.subject}" if msg.subject else ""))
    lines.append(f"<{msg.url}|Open in Windows Node Doctor>")
    return {
        "text": msg.headline,
        "attachments": [{"color": COLOURS[msg.tone], "mrkdwn_in": ["text"], "text": "\n".join(lines)}],
    }


def teams_body(msg: Message) -> dict[str, Any]:
    """An Adaptive Card message, as Teams Workflows and incoming webhooks accept it."""
    facts = [{"title": k, "value": v} for k, v in (("Node", f"{msg.cluster}/{msg.node}"), ("Check", msg.check)) if v]
    if msg.subject:
        facts.append({"title": "Object", "value": msg.subject})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": msg.headline,
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
                "color": TEAMS_STYLE[msg.tone],
            },
            {"type": "TextBlock", "text": msg.summary, "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "Open in Windows Node Doctor", "url": msg.url}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


BODIES = {
    NotificationChannel.WEBHOOK: webhook_body,
    NotificationChannel.SLACK: slack_body,
    NotificationChannel.TEAMS: teams_body,
}


# -- sending ------------------------------------------------------------------


def post_json(url: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    """POST JSON; return the status. The one seam to the network for webhooks."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.WND_NOTIFY_TIMEOUT) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        # A refusal is final, except for the ones that say "later".
        raise DeliveryError(
            f"HTTP {exc.code} {exc.reason}", retry=exc.code in (408, 425, 429) or exc.code >= 500, status=exc.code
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"cannot reach {url.split('://', 1)[-1].split('/', 1)[0]}: {reason}") from None


def send(channel: NotificationChannel, msg: Message) -> int | None:
    """Send one message on one channel; return the HTTP status (None for email)."""
    if channel.kind == NotificationChannel.EMAIL:
        recipients = [a.strip() for a in channel.target.split(",") if a.strip()]
        body = "\n\n".join(p for p in (msg.summary, f"{msg.check} {msg.subject}".strip(), msg.url) if p)
        try:
            send_mail(msg.headline[:200], body, settings.DEFAULT_FROM_EMAIL, recipients)
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"the mail server refused: {exc}") from None
        return None
    headers = {"X-WND-Delivery": str(msg.delivery_id), "X-WND-Event": msg.event}
    return post_json(channel.target, BODIES[channel.kind](msg), headers)


def claim(delivery_id: int, now: datetime) -> bool:
    """Take a due delivery for sending; exactly one caller wins."""
    due = Delivery.objects.filter(pk=delivery_id, next_attempt_at__lte=now)
    fresh = due.filter(state=Delivery.PENDING)
    abandoned = due.filter(state=Delivery.SENDING, claimed_at__lt=now - CLAIM_TIMEOUT)
    return any(rows.update(state=Delivery.SENDING, claimed_at=now) == 1 for rows in (fresh, abandoned))


def deliver(delivery_id: int, now: datetime | None = None) -> str | None:
    """Send one delivery if it is due (at ``now``) and nobody else is sending it; return its new state."""
    now = now or timezone.now()
    if not claim(delivery_id, now):
        return None
    delivery = Delivery.objects.select_related("channel", "event__finding__node__cluster").get(pk=delivery_id)
    delivery.attempts += 1
    try:
        delivery.response_code = send(delivery.channel, message_for(delivery))
    except DeliveryError as exc:
        delivery.last_error = str(exc)[:2000]
        delivery.response_code = exc.status
        if exc.retry and delivery.attempts < settings.WND_NOTIFY_MAX_ATTEMPTS:
            delivery.state = Delivery.PENDING
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (delivery.attempts - 1))
            delivery.next_attempt_at = now + timedelta(seconds=delay)
        else:
            delivery.state = Delivery.FAILED
        log.warning("notification %s to %s failed: %s", delivery.pk, delivery.channel, exc)
    else:
        delivery.state, delivery.sent_at, delivery.last_error = Delivery.SENT, timezone.now(), ""
    delivery.save(update_fields=["attempts", "state", "response_code", "last_error", "next_attempt_at", "sent_at"])
    return delivery.state


def deliver_many(ids: Iterable[int], now: datetime | None = None) -> dict[str, int]:
    """Deliver each id (those not due or taken are left alone); count the outcomes."""
    outcome: dict[str, int] = {}
    for delivery_id in ids:
        state = deliver(delivery_id, now) or "skipped"
        outcome[state] = outcome.get(state, 0) + 1
    return outcome


def deliver_due(now: datetime | None = None, *, limit: int = 200) -> dict[str, int]:
    """The periodic sweep: retries whose time came, and rows whose sender died."""
    now = now or timezone.now()
    pending = Delivery.objects.filter(state=Delivery.PENDING, next_attempt_at__lte=now)
    stuck = Delivery.objects.filter(state=Delivery.SENDING, claimed_at__lt=now - CLAIM_TIMEOUT)
    ids = sorted({*pending.values_list("pk", flat=True)[:limit], *stuck.values_list("pk", flat=True)[:limit]})
    return deliver_many(ids, now)


def send_test(channel: NotificationChannel) -> Delivery:
    """Send a test message now (one attempt, no retry) and log it like any delivery."""
    delivery = Delivery.objects.create(channel=channel, test=True)
    deliver(delivery.pk)
    delivery.refresh_from_db()
    if delivery.state == Delivery.PENDING:  # a test is not retried: the operator is looking at it
        delivery.state = Delivery.FAILED
        delivery.save(update_fields=["state"])
    return delivery


def prune_deliveries(keep_days: int = 30) -> int:
    """Drop the log of deliveries older than ``keep_days`` that are finished."""
    cutoff = timezone.now() - timedelta(days=keep_days)
    deleted, _ = Delivery.objects.filter(created_at__lt=cutoff, state__in=[Delivery.SENT, Delivery.FAILED]).delete()
    return deleted
