"""The dashboard's records: clusters, nodes, agent tokens, reports, findings.

A node is identified by (cluster, name) everywhere: models, URLs, agent
reports and channel groups.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from diagnostics.model import Evidence, FixStep, Severity, Status, fix_steps
from diagnostics.model import Finding as EngineFinding
from diagnostics.registry import link_causes as engine_link_causes

SEVERITY_CHOICES = [(s.slug, s.label) for s in Severity.ordered()]
STATUS_CHOICES = [(s.slug, s.label) for s in Status]

# A node's health is its worst open finding, or one of these.
HEALTH_OK = "ok"
HEALTH_UNKNOWN = "unknown"  # no report yet
HEALTH_CHOICES = [*SEVERITY_CHOICES, (HEALTH_OK, "Healthy"), (HEALTH_UNKNOWN, "No data")]
HEALTH_RANK = {**{s.slug: s.rank for s in Severity}, HEALTH_OK: 0, HEALTH_UNKNOWN: -1}


class Cluster(models.Model):
    name = models.SlugField(max_length=63, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Node(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=253)
    created_at = models.DateTimeField(default=timezone.now)

    # A summary kept current by diagnosis, so the fleet page is one query.
    health = models.CharField(max_length=16, choices=HEALTH_CHOICES, default=HEALTH_UNKNOWN, db_index=True)
    health_rank = models.SmallIntegerField(default=-1, db_index=True)
    critical_count = models.PositiveIntegerField(default=0)
    warning_count = models.PositiveIntegerField(default=0)
    info_count = models.PositiveIntegerField(default=0)
    unknown_count = models.PositiveIntegerField(default=0)
    open_checks = models.CharField(max_length=2000, blank=True, default="")  # " id1 id2 " for filtering
    os_build = models.CharField(max_length=64, blank=True, default="")
    os_name = models.CharField(max_length=128, blank=True, default="")
    runtime_version = models.CharField(max_length=64, blank=True, default="")
    kubelet_version = models.CharField(max_length=64, blank=True, default="")
    agent_version = models.CharField(max_length=32, blank=True, default="")
    last_report_at = models.DateTimeField(null=True, blank=True)
    last_sequence = models.BigIntegerField(null=True, blank=True)
    # The agent instance that sent ``last_sequence``: an agent whose state is lost starts a new
    # instance (and its sequence again at 1), which is accepted whatever its numbers.
    agent_instance = models.CharField(max_length=64, blank=True, default="")
    duplicate_reports = models.PositiveIntegerField(default=0)  # retries of reports already stored
    last_diagnosed_report_id = models.BigIntegerField(default=0)  # reports up to this one are checked
    # What the last stored report said, probes, files and connectivity tests (``ingest.facts_digest``):
    # a report that says the same and brings no log line is only recorded.
    facts_digest = models.CharField(max_length=64, blank=True, default="")
    dropped_reports = models.PositiveIntegerField(default=0)
    # From the cluster source: the API lists this node; or it did, until api_removed_at.
    in_api = models.BooleanField(default=False)
    api_removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster__name", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="node_unique_in_cluster")]

    def __str__(self) -> str:
        return f"{self.cluster.name}/{self.name}"

    def get_absolute_url(self) -> str:
        return reverse("node", args=[self.cluster.name, self.name])

    @property
    def group(self) -> str:
        """The channel-layer group of this node's page."""
        return f"node.{self.cluster.name}.{self.name}"

    @property
    def open_check_ids(self) -> list[str]:
        return self.open_checks.split()

    @property
    def has_agent(self) -> bool:
        return self.last_report_at is not None


@cache
def _token_query() -> str:
    """``AgentToken.authenticate``'s query, with the tables' and columns' names as the models define them."""
    q = connection.ops.quote_name

    def column(model: type[models.Model], name: str) -> str:
        field = model._meta.get_field(name)
        assert isinstance(field, models.Field)
        return f"{q(model._meta.db_table)}.{q(str(field.column))}"

    token, node, cluster = AgentToken, Node, Cluster
    return (
        f"SELECT {column(token, 'id')}, {column(token, 'last_used_at')}, {column(node, 'id')}, "
        f"{column(node, 'name')}, {column(node, 'facts_digest')}, {column(cluster, 'id')}, {column(cluster, 'name')} "
        f"FROM {q(token._meta.db_table)} "
        f"JOIN {q(node._meta.db_table)} ON {column(node, 'id')} = {column(token, 'node')} "
        f"JOIN {q(cluster._meta.db_table)} ON {column(cluster, 'id')} = {column(node, 'cluster')} "
        f"WHERE {column(token, 'token_hash')} = %s AND {column(token, 'revoked_at')} IS NULL"
    )


def _aware(value: Any) -> datetime | None:
    """A datetime column read in SQL: SQLite gives its text, PostgreSQL a datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if isinstance(value, datetime) and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class AgentToken(models.Model):
    """A per-node bearer token. Only its hash is stored; the token is shown once."""

    PREFIX = "wnd_"

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="tokens")
    label = models.CharField(max_length=100, blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12)  # first characters, to tell tokens apart
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.hint}… for {self.node}"

    @classmethod
    def issue(cls, node: Node, *, label: str = "", user: Any = None) -> tuple[AgentToken, str]:
        """Create a token for ``node``; return the record and the raw token (not stored)."""
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(node=node, label=label, token_hash=hash_token(raw), hint=raw[:10], created_by=user)
        return token, raw

    @classmethod
    def authenticate(cls, raw: str) -> AgentToken | None:
        """The active token ``raw``, with its node (name, digest; other fields load on use) and cluster.

        One query, written in SQL: it runs for every report, and building it with the ORM
        costs several times what the indexed query itself does.
        """
        if not raw.startswith(cls.PREFIX):
            return None
        with connection.cursor() as cursor:
            cursor.execute(_token_query(), [hash_token(raw)])
            row = cursor.fetchone()
        if row is None:
            return None
        token_id, last_used_at, node_id, node_name, digest, cluster_id, cluster_name = row
        db = connection.alias
        token = cls.from_db(db, ["id", "node_id", "last_used_at"], [token_id, node_id, _aware(last_used_at)])
        node = Node.from_db(db, ["id", "cluster_id", "name", "facts_digest"], [node_id, cluster_id, node_name, digest])
        node.cluster = Cluster.from_db(db, ["id", "name"], [cluster_id, cluster_name])
        token.node = node
        return token

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class Report(models.Model):
    """One accepted ``node-report/v1``, stored gzip-compressed as received (decoded)."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="reports")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    collected_at = models.DateTimeField()
    sequence = models.BigIntegerField(null=True, blank=True)
    agent_version = models.CharField(max_length=32, blank=True, default="")
    size_bytes = models.PositiveIntegerField(default=0)
    payload = models.BinaryField()
    agent_instance = models.CharField(max_length=64, blank=True, default="")
    # Set, in the transaction that writes its findings (or folds its log lines into a newer
    # report's diagnosis), when the report's diagnosis is done; until then it is owed
    # (``dashboard.delivery.sweep`` queues it again).
    diagnosed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)  # its diagnosis last queued; None: not queued

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"report {self.pk} of {self.node}"

    @staticmethod
    def pack(data: bytes) -> bytes:
        """The stored form of a report's JSON text."""
        return gzip.compress(data, compresslevel=1)

    def document(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(gzip.decompress(bytes(self.payload)))
        return data


class LogTail(models.Model):
    """The last ``WND_LOG_TAIL_BYTES`` of one log of one node, so checks see recent context."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="log_tails")
    kind = models.CharField(max_length=64)
    path = models.CharField(max_length=1024)
    text = models.TextField(blank=True, default="")
    # Every line-pattern match of ``text`` (``diagnostics.logs.scan_matches``), kept so that a report
    # only costs a scan of the lines it appends; None: not computed yet (scan the whole text).
    matches = models.JSONField(null=True, blank=True, default=None)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node", "kind"], name="logtail_unique_kind")]

    def __str__(self) -> str:
        return f"{self.kind} log of node {self.node_id}"


class FindingContent(models.Model):
    """What a stored finding says (the ``findings/v1`` fields) and when it was seen."""

    check_id = models.CharField(max_length=100)
    subject = models.CharField(max_length=400, blank=True, default="")
    severity = models.CharField(max_length=16, choices=SEVERITY_CHOICES)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=Status.FAIL.slug)
    title = models.CharField(max_length=300)
    summary = models.TextField()
    evidence = models.JSONField(default=list)
    fix = models.JSONField(default=list)
    docs = models.URLField(max_length=500, blank=True, default="")
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True

    @property
    def fix_steps(self) -> tuple[FixStep, ...]:
        """The fix as steps (explanation and commands apart), read back from the stored strings."""
        return fix_steps(tuple(str(step) for step in self.fix or ()))

    @property
    def fix_script(self) -> str:
        """Every command of the fix, in order: what "copy all as a script" copies."""
        return "\n".join(c for step in self.fix_steps for c in step.commands)


class Finding(FindingContent):
    """A finding's life on one node: opened, updated while it persists, resolved, reopened."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="findings")
    check_id = models.CharField(max_length=100, db_index=True)
    seen_count = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Lifecycle (dashboard.lifecycle): an operator acknowledges an open finding with a note,
    # or silences its notifications until a time; a finding that comes back is a new row.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ack_note = models.TextField(blank=True, default="")
    silenced_until = models.DateTimeField(null=True, blank=True)
    silence_note = models.TextField(blank=True, default="")
    occurrence = models.PositiveIntegerField(default=1)  # 2 and more: it came back after being resolved

    class Meta:
        ordering = ["-first_seen"]
        constraints = [
            models.UniqueConstraint(
                fields=["node", "check_id", "subject"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_finding_per_subject",
            )
        ]

    def __str__(self) -> str:
        return f"{self.check_id} on {self.node_id}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def sev(self) -> Severity:
        return Severity.parse(self.severity)

    def silenced_at(self, when: datetime) -> bool:
        return self.silenced_until is not None and self.silenced_until > when

    @property
    def silenced(self) -> bool:
        """Notifications about this finding are held back until ``silenced_until``."""
        return self.silenced_at(timezone.now())

    @property
    def stat(self) -> Status:
        return Status.parse(self.status)

    def to_engine(self) -> EngineFinding:
        return EngineFinding(
            check=self.check_id,
            severity=self.sev,
            status=self.stat,
            node=self.node.name,
            cluster=self.node.cluster.name,
            title=self.title,
            summary=self.summary,
            evidence=tuple(Evidence.from_dict(e) for e in self.evidence),
            fix=tuple(self.fix),
            docs=self.docs,
            subject=self.subject,
            caused_by=getattr(self, "caused_by", ""),
        )


def link_causes(rows: list[Finding]) -> list[Finding]:
    """``rows`` (the open findings of one node) with ``caused_by`` set on each row whose failure
    another open finding explains (the engine's cause table, ``diagnostics.registry.CAUSES``).

    Derived from the open set each time rather than stored: a run that re-checks only some checks
    would otherwise leave a stale or missing cause behind.
    """
    for row, linked in zip(rows, engine_link_causes([row.to_engine() for row in rows]), strict=True):
        row.caused_by = linked.caused_by  # type: ignore[attr-defined]
    return rows


class DiagnosisRun(models.Model):
    """One run of the checks on a node: from a report, on demand, or on a schedule."""

    TRIGGER_REPORT = "report"
    TRIGGER_MANUAL = "manual"
    TRIGGER_SCHEDULE = "schedule"
    TRIGGERS = [(TRIGGER_REPORT, "Report"), (TRIGGER_MANUAL, "On demand"), (TRIGGER_SCHEDULE, "Schedule")]

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=TRIGGERS, default=TRIGGER_REPORT)
    # A plain id, not a foreign key: reports are pruned in one fast DELETE.
    report_id = models.BigIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    checks_total = models.PositiveIntegerField(default=0)
    checks_done = models.PositiveIntegerField(default=0)
    findings_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    # The run's lease: renewed while it makes progress; a run without a sign of life for
    # ``WND_RUN_LEASE`` seconds is failed by ``dashboard.delivery.sweep``.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.trigger} run {self.pk} of node {self.node_id}"

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def percent(self) -> int:
        return int(100 * self.checks_done / self.checks_total) if self.checks_total else 0


def enroll(cluster_name: str, node_name: str, *, label: str = "", user: Any = None) -> tuple[Node, str]:
    """Register a node (and its cluster) if new, and issue it a token; return the raw token.

    Raises ``ValueError`` with a readable message for a name Kubernetes would refuse.
    """
    from diagnostics.report import NAME_RE

    for kind, value in (("cluster", cluster_name), ("node", node_name)):
        if not NAME_RE.match(value) or (kind == "cluster" and len(value) > 63):
            raise ValueError(f"{value!r} is not a valid {kind} name: use lower-case letters, digits, '-' and '.'")
    cluster, _ = Cluster.objects.get_or_create(name=cluster_name)
    node, _ = Node.objects.get_or_create(cluster=cluster, name=node_name)
    _token, raw = AgentToken.issue(node, label=label, user=user)
    return node, raw


# The cluster source's records live in their own package; importing them here registers them with the app.
from dashboard.cluster.models import ApiObject, SourceState, WorkloadFinding  # noqa: E402, F401

# Schedules, finding history and notifications, likewise.
from dashboard.monitoring import Delivery, FindingEvent, NotificationChannel, Schedule, ScheduleRun  # noqa: E402, F401


class Bundle(models.Model):
    """A diagnostic bundle export: one node or a selection, built by a Celery task into ``WND_BUNDLE_DIR``."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STATES = [(PENDING, "Waiting"), (RUNNING, "Building"), (DONE, "Ready"), (FAILED, "Failed")]
    FORMATS = [("tar.gz", ".tar.gz"), ("zip", ".zip")]

    nodes = models.ManyToManyField(Node, related_name="bundles")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=STATES, default=PENDING)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    fmt = models.CharField(max_length=8, choices=FORMATS, default="tar.gz")
    redact = models.BooleanField(default=True)  # secrets
    redact_ips = models.BooleanField(default=False)  # IP and MAC addresses, mapped consistently
    redact_hosts = models.BooleanField(default=False)
    file_name = models.CharField(max_length=255, blank=True, default="")  # inside WND_BUNDLE_DIR
    size_bytes = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    redactions = models.JSONField(default=dict, blank=True)  # rule -> count, never values
    # The build's lease: renewed as it progresses; an expired one is re-queued (``attempts``
    # times at most) or failed by ``dashboard.delivery.sweep``.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"bundle {self.pk} ({self.get_state_display()})"

    def get_absolute_url(self) -> str:
        return reverse("bundle", args=[self.pk])

    @property
    def finished(self) -> bool:
        return self.state in (self.DONE, self.FAILED)
