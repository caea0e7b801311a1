"""What the pages show of the cluster source: the Workloads page, each cluster's state, a node's pods."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Page, Paginator

from dashboard.cluster.diagnose import workload_checks
from dashboard.cluster.models import ApiObject, SourceState, WorkloadFinding
from dashboard.models import Cluster, Node
from diagnostics.model import Severity

SEVERITY_RANK = {s.slug: s.rank for s in Severity}


@dataclass(frozen=True)
class WorkloadQuery:
    """The Workloads page's filters, from a query string."""

    cluster: str = ""
    namespace: str = ""
    check: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> WorkloadQuery:
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        return cls(
            cluster=params.get("cluster", "").strip()[:63],
            namespace=params.get("namespace", "").strip()[:253],
            check=params.get("check", "").strip()[:100],
            page=page,
        )

    def querystring(self, **overrides: Any) -> str:
        values = {"cluster": self.cluster, "namespace": self.namespace, "check": self.check, **overrides}
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def filtered(self) -> bool:
        return bool(self.cluster or self.namespace or self.check)


def workloads_context(query: WorkloadQuery) -> dict[str, Any]:
    findings = WorkloadFinding.objects.select_related("cluster")
    if query.cluster:
        findings = findings.filter(cluster__name=query.cluster)
    if query.namespace:
        findings = findings.filter(namespace=query.namespace)
    if query.check:
        findings = findings.filter(check_id=query.check)
    findings = findings.order_by("cluster__name", "namespace", "kind", "name", "check_id", "subject")
    page: Page[WorkloadFinding] = Paginator(findings, settings.WND_WORKLOADS_PAGE_SIZE).get_page(query.page)
    nodes = {
        (n.cluster_id, n.name): n
        for n in Node.objects.select_related("cluster").filter(
            cluster_id__in={f.cluster_id for f in page}, name__in={f.node_name for f in page if f.node_name}
        )
    }
    rows = [(f, nodes.get((f.cluster_id, f.node_name))) for f in page]
    return {
        "query": query,
        "page_obj": page,
        "rows": rows,
        "clusters": list(
            Cluster.objects.filter(workload_findings__isnull=False).distinct().values_list("name", flat=True)
        ),
        "namespaces": list(
            WorkloadFinding.objects.order_by("namespace").values_list("namespace", flat=True).distinct()
        ),
        "checks": workload_checks(),
        "sources": source_states(),
    }


def source_states() -> list[SourceState]:
    """Every watched cluster's state, for the fleet page."""
    return list(SourceState.objects.select_related("cluster").order_by("cluster__name"))


def node_pods(node: Node) -> list[dict[str, Any]]:
    """The pods the API binds to this node, each with its phase, restarts and workload findings."""
    rows = ApiObject.objects.filter(cluster_id=node.cluster_id, kind="Pod", node_name=node.name).order_by(
        "namespace", "name"
    )
    findings: dict[tuple[str, str], list[WorkloadFinding]] = {}
    for finding in WorkloadFinding.objects.filter(cluster_id=node.cluster_id, node_name=node.name):
        findings.setdefault((finding.namespace, finding.name), []).append(finding)
    pods = []
    for row in rows:
        status = row.data.get("status") or {}
        containers = status.get("containerStatuses") or []
        waiting = [
            str(((c.get("state") or {}).get("waiting") or {}).get("reason") or "")
            for c in containers
            if isinstance(c, dict)
        ]
        found = sorted(
            findings.get((row.namespace, row.name), []), key=lambda f: (-SEVERITY_RANK.get(f.severity, 0), f.check_id)
        )
        pods.append(
            {
                "namespace": row.namespace,
                "name": row.name,
                "phase": str(status.get("phase") or ""),
                "waiting": ", ".join(w for w in waiting if w),
                "restarts": sum(int(c.get("restartCount") or 0) for c in containers if isinstance(c, dict)),
                "ip": str(status.get("podIP") or ""),
                "findings": found,
            }
        )
    return pods
