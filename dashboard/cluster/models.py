"""Records of the cluster source: API objects as the API returns them, each cluster's
source state, and workload findings (per API object, not per node).

The watcher process writes them; the web processes and the Celery workers read
them, so that every process sees the same cluster without its own watches.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from dashboard.models import Cluster, FindingContent
from diagnostics.model import Severity


class ApiObject(models.Model):
    """One object of a watched kind, stored as the API's JSON (without ``metadata.managedFields``)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="api_objects")
    kind = models.CharField(max_length=32)  # Node, Pod, Event, Service, EndpointSlice
    namespace = models.CharField(max_length=253, blank=True, default="")
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True, default="")
    resource_version = models.CharField(max_length=32, blank=True, default="")
    # Node: its own name; Pod: spec.nodeName; Event: the node it is about, when it names one.
    node_name = models.CharField(max_length=253, blank=True, default="")
    # Event only: the object it is about, "Pod/<namespace>/<name>" or "Node/<name>".
    ref = models.CharField(max_length=600, blank=True, default="")
    # Node: a Windows node; Pod: bound to a Windows node, or asking for Windows (selector, os, image).
    windows = models.BooleanField(default=False)
    data = models.JSONField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "kind", "namespace", "name"], name="apiobject_unique_name")
        ]
        indexes = [
            models.Index(fields=["cluster", "kind", "node_name"], name="apiobject_by_node"),
            models.Index(fields=["cluster", "kind", "ref"], name="apiobject_by_ref"),
            models.Index(fields=["cluster", "kind", "windows"], name="apiobject_windows"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace + '/' if self.namespace else ''}{self.name} in cluster {self.cluster_id}"

    @property
    def key(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` for cluster-scoped objects), as evidence names objects."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


class SourceState(models.Model):
    """How the dashboard's view of one cluster is doing: shown on the fleet page, never silently stale."""

    CONNECTING = "connecting"
    SYNCING = "syncing"
    CONNECTED = "connected"
    ERROR = "error"
    STOPPED = "stopped"
    STATES = [
        (CONNECTING, "Connecting"),
        (SYNCING, "Syncing"),
        (CONNECTED, "Connected"),
        (ERROR, "Error"),
        (STOPPED, "Stopped"),
    ]

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="source_state")
    source = models.CharField(max_length=200, blank=True, default="")  # "kubeconfig context prod-eu", "simulated"
    state = models.CharField(max_length=16, choices=STATES, default=CONNECTING)
    message = models.TextField(blank=True, default="")
    server_version = models.CharField(max_length=64, blank=True, default="")
    # Not in the API: from the cluster's configuration, for checks that compute exception lists.
    cluster_cidr = models.CharField(max_length=100, blank=True, default="")
    service_cidr = models.CharField(max_length=100, blank=True, default="")
    last_sync_at = models.DateTimeField(null=True, blank=True)  # last complete list of every kind
    last_event_at = models.DateTimeField(null=True, blank=True)
    error_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cluster__name"]

    def __str__(self) -> str:
        return f"{self.cluster_id}: {self.state}"

    @property
    def healthy(self) -> bool:
        return self.state == self.CONNECTED


class WorkloadFinding(FindingContent):
    """A workload check's finding on one API object (a pod or a controller); deleted once it passes."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="workload_findings")
    kind = models.CharField(max_length=32)
    namespace = models.CharField(max_length=253, blank=True, default="")
    name = models.CharField(max_length=253)
    node_name = models.CharField(max_length=253, blank=True, default="")

    class Meta:
        ordering = ["namespace", "kind", "name", "check_id", "subject"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "kind", "namespace", "name", "check_id", "subject"],
                name="workloadfinding_unique",
            )
        ]
        indexes = [
            models.Index(fields=["cluster", "node_name"], name="workloadfinding_by_node"),
            models.Index(fields=["namespace", "check_id"], name="workloadfinding_filter"),
        ]

    def __str__(self) -> str:
        return f"{self.check_id} on {self.kind}/{self.namespace}/{self.name}"

    @property
    def sev(self) -> Severity:
        return Severity.parse(self.severity)

    @property
    def object_key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"
