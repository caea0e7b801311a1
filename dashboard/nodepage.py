"""What the node page and its live consumer render."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dashboard import agents, lifecycle
from dashboard.cluster.pages import node_pods
from dashboard.models import DiagnosisRun, Finding, Node, Report
from dashboard.roles import is_operator
from dashboard.snapshots import stored_snapshot
from diagnostics.model import Severity, Status

SEVERITY_RANK = {s.slug: s.rank for s in Severity}


def open_findings(node: Node) -> list[Finding]:
    rows = list(node.findings.filter(resolved_at__isnull=True).select_related("acknowledged_by"))
    return sorted(rows, key=lambda f: (-SEVERITY_RANK.get(f.severity, 0), f.status != "fail", f.check_id, f.subject))


def split_findings(rows: list[Finding]) -> dict[str, list[Finding]]:
    """Failing findings, and the checks that could not decide for lack of data."""
    return {
        "findings": [f for f in rows if f.status == Status.FAIL.slug],
        "undecided": [f for f in rows if f.status != Status.FAIL.slug],
    }


@lru_cache(maxsize=256)
def _facts_of_report(report_id: int) -> list[tuple[str, str]]:
    """Readable facts from one report (cached: reports never change)."""
    report = Report.objects.select_related("node__cluster").filter(pk=report_id).first()
    if report is None:
        return []
    # The report's own facts: the node's snapshot without its API half (``snapshots``, the one builder).
    snap = stored_snapshot(report.node, api=False)
    if snap is None:
        return [("Report", "could not be read")]
    facts: list[tuple[str, str]] = []
    if snap.os is not None:
        os_info = snap.os.value
        facts.append(("Windows", f"{os_info.product_name or 'Windows'} (build {os_info.version})".strip()))
    if snap.hns_networks is not None:
        nets = ", ".join(
            f"{n.name} ({n.type}{', ' + n.subnets[0].prefix if n.subnets else ''})" for n in snap.hns_networks.value
        )
        facts.append(("HNS networks", nets or "none"))
    if snap.adapters is not None:
        facts.append(("Adapters", ", ".join(f"{a.name} [{a.status}]" for a in snap.adapters.value) or "none"))
    if snap.services is not None:
        facts.append(("Services", ", ".join(f"{s.name}: {s.status}" for s in snap.services.value) or "none"))
    if snap.images is not None:
        pause = [i.ref for i in snap.images.value if "pause" in i.repository]
        facts.append(("Pause image", ", ".join(pause) or "none found"))
    for name, file in sorted(snap.files.items()):
        facts.append((name, file.path if file.exists else f"missing ({file.path})"))
    if snap.logs_seen:
        facts.append(("Logs", ", ".join(sorted(snap.logs_seen))))
    return facts


def node_context(node: Node, user: Any) -> dict[str, Any]:
    latest = node.reports.order_by("-id").only("id", "received_at", "collected_at", "agent_version", "size_bytes")
    recent = list(latest[:10])
    operator = is_operator(user)
    return {
        "agent_online": agents.is_online(node.pk),
        "requests": agents.history(node.pk),
        "node": node,
        **split_findings(open_findings(node)),
        "timeline": lifecycle.timeline(node),
        "pods": node_pods(node),
        "reports": recent,
        "facts": _facts_of_report(recent[0].pk) if recent else [],
        "run": DiagnosisRun.objects.filter(node=node, trigger=DiagnosisRun.TRIGGER_MANUAL).first(),
        "tokens": list(node.tokens.all()) if operator else [],
        "is_operator": operator,
    }
