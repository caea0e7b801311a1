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
from django.db import transaction
from django.utils import timezone

from dashboard import live
from dashboard.diagnosis import reconcile, refresh_summary
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
    """Open the finding on nodes gone quiet, resolve it on nodes heard from again; return (opened, resolved)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.WND_AGENT_STALE_AFTER)
    flagged = Node.objects.filter(findings__check_id=STALE_CHECK, findings__resolved_at__isnull=True)
    quiet = Node.objects.filter(last_report_at__lt=cutoff).exclude(pk__in=flagged.values("pk"))
    back = flagged.filter(last_report_at__gte=cutoff)
    opened = sum(_store(pk, now, stale=True) for pk in quiet.values_list("pk", flat=True))
    resolved = sum(_store(pk, now, stale=False) for pk in back.values_list("pk", flat=True))
    return opened, resolved


def _store(node_id: int, now: datetime, *, stale: bool) -> bool:
    with transaction.atomic():
        node = Node.objects.select_for_update(of=("self",)).select_related("cluster").get(pk=node_id)
        changes = reconcile(node, [stale_finding(node, now)] if stale else [], {STALE_CHECK})
        refresh_summary(node, changes.open)
        node.version += 1
        node.save()
    live.node_changed(node.pk, node.group, findings_changed=True)
    return changes.any
