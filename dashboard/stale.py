"""Stale agents: a node whose agent stopped reporting gets a ``node.agent-stale`` finding.

Decided from the dashboard's records (``Node.last_report_at``), not from a snapshot: a
snapshot cannot tell how old it is now. The maintenance task calls ``check_stale_agents``
every 30 s; the finding opens once a node's last report is older than
``WND_AGENT_STALE_AFTER`` seconds and resolves by itself at the next check after the
agent reports again. Nodes that never had an agent (known only from the API) are left alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from dashboard.diagnosis import store_findings
from dashboard.lifecycle import DASHBOARD_CHECKS
from dashboard.models import Node
from diagnostics.model import Evidence, Finding, Status

STALE_CHECK = "node.agent-stale"


def stale_finding(node: Node, now: datetime) -> Finding:
    severity, title = DASHBOARD_CHECKS[STALE_CHECK]
    assert node.last_report_at is not None
    age = int((now - node.last_report_at).total_seconds())
    return Finding(
        check=STALE_CHECK,
        severity=severity,
        status=Status.FAIL,
        node=node.name,
        cluster=node.cluster.name,
        title=title,
        summary=(
            f"The last report arrived {age // 60} min {age % 60} s ago; the limit is "
            f"{settings.WND_AGENT_STALE_AFTER} s (WND_AGENT_STALE_AFTER). "
            "The findings shown for this node may be out of date."
        ),
        evidence=(Evidence("dashboard", f"last report received {node.last_report_at.isoformat()}"),),
        fix=(
            # As a Windows service (deploy/agent/install-service.ps1), or as the DaemonSet's pod:
            "Get-Service node-doctor-agent; Get-Content C:\\ProgramData\\windows-node-doctor\\agent.log -Tail 50",
            "kubectl -n windows-node-doctor get pods -o wide --field-selector spec.nodeName=" + node.name,
        ),
    )


def check_stale_agents(now: datetime | None = None) -> tuple[int, int]:
    """Open the finding on nodes gone quiet, resolve it on nodes heard from again; return (opened, resolved).

    Both sets are stored together (``diagnosis.store_findings``): a constant number of queries.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.WND_AGENT_STALE_AFTER)
    flagged = Node.objects.filter(findings__check_id=STALE_CHECK, findings__resolved_at__isnull=True)
    quiet = list(
        Node.objects.select_related("cluster").filter(last_report_at__lt=cutoff).exclude(pk__in=flagged.values("pk"))
    )
    back = list(flagged.select_related("cluster").filter(last_report_at__gte=cutoff).distinct())
    runs = [(node, [stale_finding(node, now)]) for node in quiet] + [(node, []) for node in back]
    changes = store_findings(runs, {STALE_CHECK})
    return sum(len(c.opened) for c in changes.values()), sum(len(c.resolved) for c in changes.values())
