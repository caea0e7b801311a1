"""Diagnostic bundle exports on the dashboard side: stored state -> ``diagnostics.bundle.writer``.

A node's bundle is made of what the dashboard holds: its latest report (raw probe
outputs and known files), its rolling log tails, its open findings and, when a cluster
source lists it, its API objects. The agent's "collect full logs" request is not wired
yet, so the bundle says that fresh logs could not be fetched from the node.

``build(bundle_id)`` is the Celery task's body: it claims the bundle, writes it to a
temporary file in ``WND_BUNDLE_DIR`` (renamed when complete), and publishes progress to
each node's page group.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dashboard import live
from dashboard.models import Bundle, Node
from diagnostics.bundle.issue import issue_url
from diagnostics.bundle.redact import RedactOptions
from diagnostics.bundle.writer import BundleSummary, NodeBundle, bundle_name, issue_for, write_bundle
from diagnostics.report import ReportError

log = logging.getLogger(__name__)

NO_FRESH_LOGS = (
    "Fresh logs could not be fetched from the node (the agent's full-log collection is not available): "
    "logs/ holds the dashboard's rolling tail of each log, the last {size} KiB."
)
NO_REPORT = "The node has not sent a report yet: the bundle holds only what the Kubernetes API says about it."


class ExportError(ValueError):
    """A node cannot be exported (e.g. nothing is known about it); the message says why."""


def node_bundle(node: Node) -> NodeBundle:
    """Everything the dashboard knows about ``node``, as the writer takes it."""
    findings = [f.to_engine() for f in node.findings.filter(resolved_at__isnull=True).select_related("node__cluster")]
    tails = {t.kind: (t.path, t.text) for t in node.log_tails.all()}
    objects, base = _api_objects(node)
    notes = [NO_FRESH_LOGS.format(size=settings.WND_LOG_TAIL_BYTES // 1024)]
    report = node.reports.order_by("-id").first()
    if report is None:
        if base is None:
            raise ExportError(f"nothing is known about {node} yet: no report from its agent, no API object")
        from diagnostics.bundle.issue import facts_of

        return NodeBundle(
            node=node.name,
            cluster=node.cluster.name,
            cluster_objects=objects,
            findings=findings,
            notes=[NO_REPORT],
            facts=facts_of(base),
        )
    try:
        bundle = NodeBundle.from_report(
            report.document(), log_texts=tails, findings=findings, cluster_objects=objects, notes=notes
        )
    except ReportError as exc:
        raise ExportError(f"the latest report of {node} cannot be read: {exc}") from None
    if base is not None:
        from diagnostics.bundle.issue import facts_of
        from diagnostics.report import parse_report, snapshot_from_report

        snap = snapshot_from_report(parse_report(report.document()), log_texts=tails, base=base)
        bundle.facts = facts_of(snap)
    return bundle


def _api_objects(node: Node) -> tuple[dict[str, Any], Any]:
    """cluster/*.json of the node's bundle, from the cluster source's stored objects (empty without one)."""
    try:
        from dashboard.cluster.snapshot import api_base_snapshot
    except ImportError:
        return {}, None
    base = api_base_snapshot(node)
    if base is None:
        return {}, None
    objects: dict[str, Any] = {}
    if base.node_object is not None:
        objects["node.json"] = base.node_object.value
    if base.pods is not None:
        objects["pods.json"] = {"apiVersion": "v1", "kind": "PodList", "items": list(base.pods.value)}
    if base.events is not None:
        objects["events.json"] = {"apiVersion": "v1", "kind": "EventList", "items": list(base.events.value)}
    view = base.cluster_view
    if view is not None:
        if view.server_version:
            objects["version.json"] = {"gitVersion": view.server_version}
        if view.services:
            objects["services.json"] = {"apiVersion": "v1", "kind": "ServiceList", "items": list(view.services)}
        if view.endpoint_slices:
            objects["endpointslices.json"] = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSliceList",
                "items": list(view.endpoint_slices),
            }
        if view.cluster_cidr or view.service_cidr:
            # The name and shape AKS uses, which the bundle reader takes the cluster's CIDRs from.
            objects["kubeclusterconfig.json"] = {
                "Kubernetes": {"Network": {"ClusterCidr": view.cluster_cidr, "ServiceCidr": view.service_cidr}}
            }
    return objects, base


def options_of(bundle: Bundle) -> RedactOptions:
    return RedactOptions(secrets=bundle.redact, ips=bundle.redact_ips, hosts=bundle.redact_hosts)


def export_nodes(
    nodes: Iterable[Node],
    out: BinaryIO,
    *,
    fmt: str = "tar.gz",
    options: RedactOptions | None = None,
    progress: Any = None,
    now: datetime | None = None,
) -> BundleSummary:
    """Write the bundle of ``nodes`` to ``out``; ``ExportError`` when a node has nothing to export."""
    parts = [node_bundle(n) for n in nodes]
    return write_bundle(out, parts, fmt=fmt, options=options, progress=progress, now=now)


def default_file_name(nodes: list[Node], fmt: str, when: datetime, options: RedactOptions) -> str:
    from diagnostics.bundle.redact import Redactor

    redactor = Redactor(options)
    if options.hosts:
        redactor.learn_hosts([n.name for n in nodes])
    stub = [NodeBundle(node=n.name, cluster=n.cluster.name) for n in nodes]
    return f"{bundle_name(stub, when, redactor)}.{fmt}"


def build(bundle_id: int) -> bool:
    """Build a requested bundle; False when another worker has it already (idempotent)."""
    if not Bundle.objects.filter(pk=bundle_id, state=Bundle.PENDING).update(state=Bundle.RUNNING):
        return False
    bundle = Bundle.objects.get(pk=bundle_id)
    nodes = list(bundle.nodes.select_related("cluster").order_by("cluster__name", "name"))
    groups = [n.group for n in nodes]
    folder = Path(settings.WND_BUNDLE_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    options = options_of(bundle)
    when = datetime.now(UTC)
    name = f"{bundle.pk}-{default_file_name(nodes, bundle.fmt, when, options)}"
    last = [-1]

    def progress(done: int, total: int, _what: str) -> None:
        percent = min(99, int(100 * done / max(total, 1)))
        if percent > last[0]:
            last[0] = percent
            Bundle.objects.filter(pk=bundle.pk).update(progress=percent)
            _publish(bundle.pk, groups)

    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            summary = export_nodes(nodes, out, fmt=bundle.fmt, options=options, progress=progress, now=when)
        Path(tmp_name).replace(folder / name)
    except Exception as exc:  # the user must see why, whatever went wrong
        Path(tmp_name).unlink(missing_ok=True)
        log.exception("bundle %s failed", bundle.pk)
        Bundle.objects.filter(pk=bundle.pk).update(
            state=Bundle.FAILED, error=str(exc)[:2000] or type(exc).__name__, finished_at=timezone.now()
        )
        _publish(bundle.pk, groups)
        return True
    with transaction.atomic():
        Bundle.objects.filter(pk=bundle.pk).update(
            state=Bundle.DONE,
            progress=100,
            file_name=name,
            size_bytes=(folder / name).stat().st_size,
            redactions=summary.redactions,
            finished_at=timezone.now(),
        )
    _publish(bundle.pk, groups)
    return True


def _publish(bundle_id: int, groups: list[str]) -> None:
    live.publish_many([(group, {"type": "node.bundle_progress", "bundle_id": bundle_id}) for group in groups])


def file_path(bundle: Bundle) -> Path | None:
    """The finished bundle's file, or None (not built, failed, or removed from disk)."""
    if bundle.state != Bundle.DONE or not bundle.file_name or "/" in bundle.file_name or "\\" in bundle.file_name:
        return None
    path = Path(settings.WND_BUNDLE_DIR) / bundle.file_name
    return path if path.is_file() else None


def github_issue_url(node: Node) -> str:
    """The prefilled "new issue" link for ``node`` (secrets redacted), within GitHub's URL limits."""
    title, fields = issue_for(node_bundle(node), RedactOptions())
    return issue_url(
        title,
        fields,
        repository=settings.WND_ISSUE_REPOSITORY,
        template=settings.WND_ISSUE_TEMPLATE,
    )
