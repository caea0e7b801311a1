"""Records of scheduled checks, finding history and notifications.

- ``Schedule``: which nodes and which checks to run, and when (an interval or a cron
  expression), mirrored into a django-celery-beat ``PeriodicTask`` that the beat process
  reads (``dashboard.schedules.sync_periodic_task``).
- ``ScheduleRun``: one run of a schedule (or its recorded skip), with duration and outcome.
- ``FindingEvent``: one transition in a finding's life (opened, reopened, resolved,
  acknowledged, silenced, unsilenced): the node timeline and the fleet history.
- ``NotificationChannel`` and ``Delivery``: where notifications go, and the outbox of one
  row per (transition, channel), which is what makes a notification go out once.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from dashboard.models import Finding, Node
from diagnostics.model import Severity


class Schedule(models.Model):
    NODES_ALL = "all"
    NODES_SELECTOR = "selector"
    NODES_NAMES = "names"
    NODE_MODES = [
        (NODES_ALL, "All Windows nodes"),
        (NODES_SELECTOR, "Nodes matching a label selector"),
        (NODES_NAMES, "Nodes by name"),
    ]

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    nodes = models.CharField(max_length=16, choices=NODE_MODES, default=NODES_ALL)
    label_selector = models.CharField(max_length=500, blank=True, default="")
    node_names = models.TextField(blank=True, default="")  # one per line: "node" or "cluster/node"
    checks = models.CharField(max_length=2000, blank=True, default="")  # ids or areas, space-separated; empty: all
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    cron = models.CharField(max_length=100, blank=True, default="")  # "minute hour day-of-month month day-of-week"
    periodic_task = models.OneToOneField(
        PeriodicTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="wnd_schedule"
    )
    # Set while a run holds the schedule (claimed atomically); a second run is skipped meanwhile.
    running_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def check_ids(self) -> list[str]:
        return self.checks.split()

    @property
    def timing(self) -> str:
        """How often, as a person reads it."""
        if self.cron:
            return f"cron {self.cron}"
        seconds = self.interval_seconds or 0
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds >= size and seconds % size == 0:
                count = seconds // size
                return f"every {count} {unit}{'s' if count != 1 else ''}"
        return f"every {seconds} second{'s' if seconds != 1 else ''}"

    @property
    def targets(self) -> str:
        if self.nodes == self.NODES_SELECTOR:
            return f"label selector {self.label_selector}"
        if self.nodes == self.NODES_NAMES:
            return ", ".join(self.node_names.split())
        return "all Windows nodes"


class ScheduleRun(models.Model):
    """One run of a schedule. Written ``running`` when it starts and finished at the end;
    a run whose worker died is marked ``interrupted`` by the next run of its schedule."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    STATES = [
        (RUNNING, "Running"),
        (OK, "Finished"),
        (FAILED, "Failed"),
        (SKIPPED, "Skipped"),
        (INTERRUPTED, "Interrupted"),
    ]
    CSS = {RUNNING: "sev-info", OK: "health-ok", FAILED: "sev-critical", SKIPPED: "health-unknown"}

    TRIGGER_BEAT = "beat"
    TRIGGER_MANUAL = "manual"
    TRIGGERS = [(TRIGGER_BEAT, "Schedule"), (TRIGGER_MANUAL, "Run now")]

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=TRIGGERS, default=TRIGGER_BEAT)
    state = models.CharField(max_length=16, choices=STATES, default=RUNNING, db_index=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    nodes_total = models.PositiveIntegerField(default=0)
    nodes_done = models.PositiveIntegerField(default=0)
    nodes_asked = models.PositiveIntegerField(default=0)  # agents asked for fresh data
    nodes_fresh = models.PositiveIntegerField(default=0)  # of those, how many reported in time
    nodes_failed = models.PositiveIntegerField(default=0)
    findings_opened = models.PositiveIntegerField(default=0)
    findings_resolved = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.state} run {self.pk} of schedule {self.schedule_id}"

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None

    @property
    def duration_seconds(self) -> float | None:
        duration = self.duration
        return duration.total_seconds() if duration is not None else None

    @property
    def css(self) -> str:
        return self.CSS.get(self.state, "sev-warning")


class FindingEvent(models.Model):
    OPENED = "opened"
    REOPENED = "reopened"
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    SILENCED = "silenced"
    UNSILENCED = "unsilenced"
    KINDS = [
        (OPENED, "Opened"),
        (REOPENED, "Came back"),
        (RESOLVED, "Resolved"),
        (ACKNOWLEDGED, "Acknowledged"),
        (SILENCED, "Silenced"),
        (UNSILENCED, "Silence ended"),
    ]
    # Transitions of the finding itself; the others are what people did about it.
    TRANSITIONS = (OPENED, REOPENED, RESOLVED)
    CSS = {OPENED: "sev-critical", REOPENED: "sev-critical", RESOLVED: "health-ok"}

    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="events")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="finding_events")
    kind = models.CharField(max_length=16, choices=KINDS)
    at = models.DateTimeField(default=timezone.now)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["node", "at"], name="findingevent_node_at"),
            models.Index(fields=["at"], name="findingevent_at"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} finding {self.finding_id}"

    @property
    def css(self) -> str:
        return self.CSS.get(self.kind, "health-unknown")


class NotificationChannel(models.Model):
    WEBHOOK = "webhook"
    SLACK = "slack"
    TEAMS = "teams"
    EMAIL = "email"
    KINDS = [
        (WEBHOOK, "Webhook (JSON)"),
        (SLACK, "Slack-compatible webhook"),
        (TEAMS, "Microsoft Teams webhook"),
        (EMAIL, "Email"),
    ]

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=KINDS)
    target = models.CharField(max_length=1000)  # a URL, or comma-separated email addresses
    min_severity = models.CharField(
        max_length=16, choices=[(s.slug, s.label) for s in Severity.ordered()], default=Severity.WARNING.slug
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def wants(self, severity: str) -> bool:
        return Severity.parse(severity).rank >= Severity.parse(self.min_severity).rank

    @property
    def target_hint(self) -> str:
        """The target without the secret part of a webhook URL (its path), for viewers."""
        if self.kind == self.EMAIL:
            return self.target
        scheme, _, rest = self.target.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/…"


class Delivery(models.Model):
    """One notification to one channel: the outbox row, claimed atomically by a sender."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    STATES = [(PENDING, "Pending"), (SENDING, "Sending"), (SENT, "Sent"), (FAILED, "Failed")]
    CSS = {PENDING: "sev-info", SENDING: "sev-info", SENT: "health-ok", FAILED: "sev-critical"}

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(FindingEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    test = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=STATES, default=PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The de-duplication: one message per transition and channel, however many runs see it.
            models.UniqueConstraint(
                fields=["channel", "event"], condition=models.Q(event__isnull=False), name="one_delivery_per_event"
            )
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.state} delivery {self.pk} to {self.channel_id}"

    @property
    def css(self) -> str:
        return self.CSS[self.state]
