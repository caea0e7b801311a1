"""What the node page and its live consumer render."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.db import transaction
from django.utils import timezone

from dashboard import agents, lifecycle, nodetests
from dashboard.access.roles import is_operator
from dashboard.cluster.pages import node_pods
from dashboard.models import DiagnosisRun, Finding, Node, Report, link_causes
from dashboard.pages import charts
from dashboard.snapshots import stored_snapshot
from diagnostics.checks.common import network_plugin
from diagnostics.model import Severity, Status

SEVERITY_RANK = {s.slug: s.rank for s in Severity}


def open_findings(node: Node) -> list[Finding]:
    rows = link_causes(list(node.findings.filter(resolved_at__isnull=True).select_related("acknowledged_by")))
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
    plugin = network_plugin(snap)
    facts.append(("Network plugin", f"{plugin.value} (from {plugin.source})" if plugin else "not recognised"))
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


@dataclass
class CheckGroup:
    """The open findings of one check on a node (several subjects are sub-rows), and what it caused."""

    check_id: str
    findings: list[Finding]
    caused: list[CheckGroup] = field(default_factory=list)

    @property
    def first(self) -> Finding:
        return self.findings[0]

    @property
    def rank(self) -> int:
        return max(SEVERITY_RANK.get(f.severity, 0) for f in self.findings)


def _causes(finding: Finding) -> list[str]:
    """The check ids a finding names as its cause (``caused_by``: one id or several), if the field exists."""
    value = getattr(finding, "caused_by", None)
    if not value:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return [str(v) for v in value if v]


def group_findings(rows: list[Finding]) -> list[CheckGroup]:
    """One group per check, worst first; a group whose findings name another open check as their
    cause is nested under that check's group (root causes first), once, without cycles."""
    groups: dict[str, CheckGroup] = {}
    for finding in rows:
        groups.setdefault(finding.check_id, CheckGroup(finding.check_id, [])).findings.append(finding)
    parent: dict[str, str] = {}
    for check_id, group in groups.items():
        for cause in (c for f in group.findings for c in _causes(f)):
            if cause in groups and cause != check_id:
                seen, up = {check_id}, cause
                while up in parent and up not in seen:  # refuse a cause that leads back to this check
                    seen.add(up)
                    up = parent[up]
                if up not in seen:
                    parent[check_id] = cause
                    break
    for check_id, cause in parent.items():
        groups[cause].caused.append(groups[check_id])
    order = sorted(groups.values(), key=lambda g: (-g.rank, g.check_id))
    for group in order:
        group.caused.sort(key=lambda g: (-g.rank, g.check_id))
    return [g for g in order if g.check_id not in parent]


def install_commands(dashboard_url: str, node: Node, token: str) -> dict[str, str]:
    """The agent install commands for this node, filled with the dashboard URL and its new token."""
    return {
        "daemonset": (
            "# The DaemonSet's agents enroll themselves (no token): in deploy/kubernetes/overlays/production\n"
            f"# set dashboard-url={dashboard_url} and cluster={node.cluster.name}, then:\n"
            "kubectl apply -k deploy/kubernetes/overlays/production"
        ),
        "service": (
            f".\\install-service.ps1 -Dashboard {dashboard_url} -Cluster {node.cluster.name} -Token {token} `\n"
            "    -Wheelhouse .\\wheelhouse -Nssm C:\\k\\nssm.exe"
        ),
    }


def remove(node: Node) -> None:
    """Delete a node and everything of it (reports, findings, tokens, runs): its tokens are revoked
    first, so an agent that authenticates in between is refused, its open WebSockets are closed,
    and the fleet pages are told."""
    from dashboard import live

    groups = [agents.reviewed_group(node)]
    with transaction.atomic():
        active = node.tokens.filter(revoked_at__isnull=True)
        groups += [agents.token_group(pk) for pk in active.values_list("pk", flat=True)]
        active.update(revoked_at=timezone.now())
        node_id = node.pk
        node.delete()
    agents.cut_off(groups, "node removed")
    live.publish_many([(live.FLEET_GROUP, {"type": "fleet.changed", "node_id": node_id})])


def run_basis(run: DiagnosisRun | None) -> dict[str, Any] | None:
    """Which report a run used and how old it was when the run started (None: API facts only)."""
    if run is None or not run.report_id:
        return None
    report = Report.objects.filter(pk=run.report_id).only("id", "received_at", "collected_at").first()
    if report is None:
        return None
    age = (run.started_at - report.collected_at).total_seconds()
    return {"report": report, "age_seconds": max(0, int(age)), "stale": age > 300}


def agent_state(node: Node, online: bool, tokens: list[Any] | None) -> dict[str, str]:
    """What the page says about the agent: a state string set elsewhere (``node.agent_state``) wins;
    else no active token, connected, or not connected."""
    custom = str(getattr(node, "agent_state", "") or "")
    if custom:
        return {"css": "health-warning", "text": custom}
    if tokens is not None and tokens and not any(t.active for t in tokens):
        return {"css": "health-critical", "text": "reports refused: every token revoked"}
    if online:
        return {"css": "health-ok", "text": "connected"}
    if not node.has_agent:
        waiting = tokens is not None and any(t.active for t in tokens)
        return {"css": "health-unknown", "text": "waiting for its first report" if waiting else "no agent"}
    return {"css": "health-unknown", "text": "not connected"}


def node_context(node: Node, user: Any) -> dict[str, Any]:
    latest = node.reports.order_by("-id").only("id", "received_at", "collected_at", "agent_version", "size_bytes")
    recent = list(latest[:10])
    operator = is_operator(user)
    online = agents.is_online(node.pk)
    tokens = list(node.tokens.all())
    split = split_findings(open_findings(node))
    run = DiagnosisRun.objects.filter(node=node, trigger=DiagnosisRun.TRIGGER_MANUAL).first()
    records = agents.history(node.pk)
    return {
        "agent_online": online,
        "agent": agent_state(node, online, tokens),
        "requests": records,
        "tests": nodetests.present(records),
        "services": nodetests.service_ports(node) if operator else [],
        "node": node,
        **split,
        "groups": group_findings(split["findings"]),
        "timeline": lifecycle.timeline(node),
        "pods": node_pods(node),
        "reports": recent,
        "facts": _facts_of_report(recent[0].pk) if recent else [],
        "run": run,
        "run_basis": run_basis(run),
        "node_chart": charts.node_timeline(node),
        "tokens": tokens if operator else [],
        "active_tokens": sum(1 for t in tokens if t.active),
        "is_operator": operator,
    }
