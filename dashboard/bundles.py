"""Diagnostic bundle exports on the dashboard side: stored state -> ``diagnostics.bundle.writer``.

A node's bundle is made of what the dashboard holds: its latest report (raw probe
outputs and known files), its rolling log tails, its open findings and, when a cluster
source lists it, its API objects. Before writing, the agent of every connected node is
sent ``collect-bundle-logs`` and given ``WND_BUNDLE_LOGS_WAIT`` seconds (all nodes at
once) to answer; the fresh logs it sends (the last 512 KiB of each) replace the stored
tails in logs/. The manifest and ISSUE.md say per node whether that worked, or why not
(agent not connected, no answer in time, the agent's error). Findings and ISSUE.md facts
stay those of the stored state: they are what the dashboard showed.

``build(bundle_id)`` is the Celery task's body: it claims the bundle, writes it to a local
temporary file, saves it to the bundle storage when complete (``dashboard.bundlestore``: a
shared folder or object storage), and publishes progress to
each node's page group; what it is doing meanwhile ("asking win-a for fresh logs…") is
``stage_of(bundle_id)``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dashboard import agents, bundlestore, live
from dashboard.models import Bundle, Node, link_causes
from diagnostics.bundle.issue import issue_url
from diagnostics.bundle.redact import RedactOptions
from diagnostics.bundle.writer import BundleSummary, LogSource, NodeBundle, issue_for, write_bundle
from diagnostics.report import ReportError

log = logging.getLogger(__name__)

FRESH_LOGS = (
    "Fresh logs were collected from the node's agent for this bundle: "
    "logs/ holds the last {size} KiB of each log{rest}."
)
FRESH_LOGS_PARTLY = "; {kinds}: the dashboard's rolling tail (the agent sent none)"
NO_FRESH_LOGS = (
    "Fresh logs could not be fetched from the node ({why}): "
    "logs/ holds the dashboard's rolling tail of each log, the last {size} KiB."
)
NO_FRESH_LOGS_AT_ALL = (
    "Fresh logs could not be fetched from the node ({why}), and the dashboard holds none of its logs."
)
NOT_ASKED = (
    "Fresh logs were not requested from the node: logs/ holds the dashboard's rolling tail of each log, "
    "the last {size} KiB."
)
NOT_CONNECTED = "its agent was not connected"
NO_ANSWER = "its agent did not answer within {wait} s"
AGENT_ERROR = "its agent answered with an error: {error}"
NO_LOGS = "its agent could read none of the node's logs"
EXPIRED = "its request expired before an answer came"
POLL_SECONDS = 0.25
STAGE_TTL = 3600
NO_REPORT = "The node has not sent a report yet: the bundle holds only what the Kubernetes API says about it."


class ExportError(ValueError):
    """A node cannot be exported (e.g. nothing is known about it); the message says why."""


@dataclass
class FreshLogs:
    """What asking a node's agent for fresh logs gave: the logs (kind -> (Windows path, local file)), or why none.

    The files are the agent's text as it sent it, UTF-8, unredacted: the writer redacts as it streams them.
    """

    logs: dict[str, tuple[str, Path]] = field(default_factory=dict)
    problem: str = ""  # "" when the agent sent logs

    def sources(self) -> list[LogSource]:
        return [LogSource(kind, windows_path, path=local) for kind, (windows_path, local) in sorted(self.logs.items())]

    def note(self, stored_kinds: Iterable[str]) -> str:
        """The manifest's and ISSUE.md's line about where logs/ comes from."""
        tail_kib = settings.WND_LOG_TAIL_BYTES // 1024
        stored = set(stored_kinds)
        if self.problem and not stored:
            return NO_FRESH_LOGS_AT_ALL.format(why=self.problem)
        if self.problem:
            return NO_FRESH_LOGS.format(why=self.problem, size=tail_kib)
        missing = sorted(stored - set(self.logs))
        rest = FRESH_LOGS_PARTLY.format(kinds=", ".join(missing)) if missing else ""
        return FRESH_LOGS.format(size=agents.BUNDLE_LOGS_MAX_CHARS // 1024, rest=rest)


def collect_fresh_logs(
    nodes: Iterable[Node],
    folder: Path,
    *,
    wait: float,
    stage: Callable[[str], None] | None = None,
) -> dict[int, FreshLogs]:
    """Ask every connected node's agent for its full logs; node id -> what came back within ``wait`` seconds.

    The nodes are asked all at once and share the wait. Logs are written to files under
    ``folder`` (which the caller removes), so that a selection of many nodes is never held
    in memory at once. Every node of ``nodes`` gets an entry.
    """
    found: dict[int, FreshLogs] = {}
    pending: dict[int, tuple[Node, str]] = {}
    for node in nodes:
        if not agents.is_online(node.pk):
            found[node.pk] = FreshLogs(problem=NOT_CONNECTED)
            continue
        if stage is not None:
            stage(f"asking {node.name} for fresh logs…")
        record = agents.send_request(node, "collect-bundle-logs", {}, user="bundle export")
        if record["state"] == "error":  # went away since is_online
            found[node.pk] = FreshLogs(problem=NOT_CONNECTED)
        else:
            pending[node.pk] = (node, record["id"])
    deadline = time.monotonic() + wait
    while pending:
        for node_id, (_node, request_id) in list(pending.items()):
            answer = _answer(node_id, request_id, folder)
            if answer is not None:
                found[node_id] = answer
                del pending[node_id]
        if not pending or time.monotonic() >= deadline:
            break
        if stage is not None:
            stage(f"asking {', '.join(n.name for n, _r in pending.values())} for fresh logs…")
        time.sleep(POLL_SECONDS)
    for node_id in pending:
        found[node_id] = FreshLogs(problem=NO_ANSWER.format(wait=_seconds(wait)))
    return found


def _answer(node_id: int, request_id: str, folder: Path) -> FreshLogs | None:
    """The agent's answer to ``request_id`` once there is one; None while it is still working."""
    logs = agents.take_bundle_logs(node_id, request_id)
    if logs is None:
        record = agents.request_record(node_id, request_id)
        if record is None:
            return FreshLogs(problem=EXPIRED)
        if record["state"] == "error":
            return FreshLogs(problem=AGENT_ERROR.format(error=record["error"] or "no message"))
        if record["state"] != "done":
            return None
        # "done" is saved after the logs: a None read before the answer came is read again.
        logs = agents.take_bundle_logs(node_id, request_id)
        if logs is None:
            return FreshLogs(problem=NO_LOGS)
    if not logs:
        return FreshLogs(problem=NO_LOGS)
    where = folder / str(node_id)
    where.mkdir(parents=True, exist_ok=True)
    fresh = FreshLogs()
    for index, (kind, (windows_path, text)) in enumerate(sorted(logs.items())):
        local = where / f"{index}.log"
        local.write_text(text, encoding="utf-8", newline="")
        fresh.logs[kind] = (windows_path, local)
    return fresh


def _seconds(wait: float) -> str:
    return f"{wait:g}"


def node_bundle(node: Node, fresh: FreshLogs | None = None) -> NodeBundle:
    """Everything the dashboard knows about ``node``, as the writer takes it.

    ``fresh``: what its agent sent when asked for full logs (``collect_fresh_logs``); its
    logs replace the stored tails of the same kind in logs/. None: the agent was not asked.
    """
    open_rows = link_causes(list(node.findings.filter(resolved_at__isnull=True).select_related("node__cluster")))
    findings = [f.to_engine() for f in open_rows]
    tails = {t.kind: (t.path, t.text) for t in node.log_tails.all()}
    objects, base = _api_objects(node)
    notes = [fresh.note(tails) if fresh is not None else NOT_ASKED.format(size=settings.WND_LOG_TAIL_BYTES // 1024)]
    fresh_sources = fresh.sources() if fresh is not None else []
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
            logs=fresh_sources,
            notes=[NO_REPORT, *notes] if fresh is not None else [NO_REPORT],
            facts=facts_of(base),
        )
    try:
        bundle = NodeBundle.from_report(
            report.document(), log_texts=tails, findings=findings, cluster_objects=objects, notes=notes
        )
    except ReportError as exc:
        raise ExportError(f"the latest report of {node} cannot be read: {exc}") from None
    if fresh_sources:
        kinds = {source.kind for source in fresh_sources}
        bundle.logs = sorted(
            [*fresh_sources, *(lg for lg in bundle.logs if lg.kind not in kinds)], key=lambda lg: lg.kind
        )
    if base is not None:
        from dashboard.snapshots import stored_snapshot
        from diagnostics.bundle.issue import facts_of

        snap = stored_snapshot(node)
        if snap is not None:
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
    ask_agents: bool = True,
    stage: Callable[[str], None] | None = None,
) -> BundleSummary:
    """Write the bundle of ``nodes`` to ``out``; ``ExportError`` when a node has nothing to export.

    ``ask_agents``: first ask the connected agents for fresh logs (``collect_fresh_logs``,
    up to ``WND_BUNDLE_LOGS_WAIT`` seconds); ``stage`` hears what is being waited for.
    """
    nodes = list(nodes)
    with tempfile.TemporaryDirectory(prefix="wnd-fresh-logs-") as tmp:
        fresh: dict[int, FreshLogs] = {}
        if ask_agents:
            fresh = collect_fresh_logs(nodes, Path(tmp), wait=settings.WND_BUNDLE_LOGS_WAIT, stage=stage)
        parts = [node_bundle(n, fresh.get(n.pk)) for n in nodes]
        if stage is not None:
            stage("")
        return write_bundle(out, parts, fmt=fmt, options=options, progress=progress, now=now)


def build(bundle_id: int) -> bool:
    """Build a requested bundle; False when another worker has it already (idempotent)."""
    claimed = Bundle.objects.filter(pk=bundle_id, state=Bundle.PENDING).update(
        state=Bundle.RUNNING, heartbeat_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return False
    bundle = Bundle.objects.get(pk=bundle_id)
    nodes = list(bundle.nodes.select_related("cluster").order_by("cluster__name", "name"))
    groups = [n.group for n in nodes]
    options = options_of(bundle)
    when = datetime.now(UTC)
    last = [-1]

    def progress(done: int, total: int, _what: str) -> None:
        percent = min(99, int(100 * done / max(total, 1)))
        if percent > last[0]:
            last[0] = percent
            # Progress renews the build's lease (``dashboard.delivery``).
            Bundle.objects.filter(pk=bundle.pk).update(progress=percent, heartbeat_at=timezone.now())
            _publish(bundle.pk, groups)

    def stage(text: str) -> None:
        if text != stage_of(bundle.pk):
            Bundle.objects.filter(pk=bundle.pk).update(heartbeat_at=timezone.now())
            set_stage(bundle.pk, text)
            _publish(bundle.pk, groups)

    fd, tmp_name = tempfile.mkstemp(prefix="wnd-bundle-", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            summary = export_nodes(
                nodes, out, fmt=bundle.fmt, options=options, progress=progress, now=when, stage=stage
            )
        size = Path(tmp_name).stat().st_size
        # Named after the archive's own top folder, so a mapped host has one token in both.
        name = bundlestore.save(f"{bundle.pk}-{summary.root}.{bundle.fmt}", Path(tmp_name))
        Path(tmp_name).unlink(missing_ok=True)  # a folder storage moved it; object storage copied it
    except Exception as exc:  # the user must see why, whatever went wrong
        Path(tmp_name).unlink(missing_ok=True)
        set_stage(bundle.pk, "")
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
            size_bytes=size,
            redactions=summary.redactions,
            finished_at=timezone.now(),
        )
    _publish(bundle.pk, groups)
    return True


def _stage_key(bundle_id: int) -> str:
    return f"wnd:bundle-stage:{bundle_id}"


def stage_of(bundle_id: int) -> str:
    """What a running build is waiting for ("asking win-a for fresh logs…"), or ""."""
    raw = live.redis_client().get(_stage_key(bundle_id))
    return raw.decode() if isinstance(raw, bytes) else ""


def set_stage(bundle_id: int, text: str) -> None:
    if text:
        live.redis_client().set(_stage_key(bundle_id), text, ex=STAGE_TTL)
    else:
        live.redis_client().delete(_stage_key(bundle_id))


def publish_progress(bundle_id: int) -> None:
    """Tell the pages of the bundle's nodes that its state changed."""
    set_stage(bundle_id, "")
    _publish(bundle_id, [n.group for n in Node.objects.filter(bundles=bundle_id).select_related("cluster")])


def _publish(bundle_id: int, groups: list[str]) -> None:
    live.publish_many([(group, {"type": "node.bundle_progress", "bundle_id": bundle_id}) for group in groups])


def file_path(bundle: Bundle) -> Path | None:
    """The finished bundle's local file when the storage is a folder, or None (not built, failed,
    pruned, or kept in object storage: read it with ``open_file``)."""
    if bundle.state != Bundle.DONE:
        return None
    return bundlestore.local_path(bundle.file_name)


def open_file(bundle: Bundle) -> bundlestore.Opened | None:
    """The finished bundle's file, open for reading, or None (not built, failed, or removed)."""
    if bundle.state != Bundle.DONE:
        return None
    return bundlestore.open_file(bundle.file_name)


def github_issue_url(node: Node) -> str:
    """The prefilled "new issue" link for ``node`` (secrets redacted), within GitHub's URL limits."""
    title, fields = issue_for(node_bundle(node), RedactOptions())
    return issue_url(
        title,
        fields,
        repository=settings.WND_ISSUE_REPOSITORY,
        template=settings.WND_ISSUE_TEMPLATE,
    )
