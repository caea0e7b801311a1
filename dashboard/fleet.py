"""The fleet list: filtering, ordering and paging shared by the page and its live consumer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet, Sum

from dashboard.cluster.pages import source_states
from dashboard.lifecycle import known_check_ids
from dashboard.models import HEALTH_CHOICES, Cluster, Node
from diagnostics.model import Severity


@dataclass(frozen=True)
class FleetQuery:
    """The fleet page's filters, from a query string."""

    q: str = ""
    cluster: str = ""
    severity: str = ""
    check: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> FleetQuery:
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        severity = params.get("severity", "")
        return cls(
            q=params.get("q", "").strip()[:100],
            cluster=params.get("cluster", "").strip()[:63],
            severity=severity if severity in {s.slug for s in Severity} else "",
            check=params.get("check", "").strip()[:100],
            page=page,
        )

    def querystring(self, **overrides: Any) -> str:
        values = {"q": self.q, "cluster": self.cluster, "severity": self.severity, "check": self.check}
        values.update(overrides)
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.cluster or self.severity or self.check)


def nodes_for(query: FleetQuery) -> QuerySet[Node]:
    nodes = Node.objects.select_related("cluster")
    if query.q:
        nodes = nodes.filter(name__icontains=query.q)
    if query.cluster:
        nodes = nodes.filter(cluster__name=query.cluster)
    if query.severity:
        nodes = nodes.filter(**{f"{query.severity}_count__gt": 0})
    if query.check:
        nodes = nodes.filter(open_checks__contains=f" {query.check} ")
    return nodes.order_by("cluster__name", "-health_rank", "name")


def fleet_context(query: FleetQuery) -> dict[str, Any]:
    """Everything the fleet page and its partials render."""
    nodes = nodes_for(query)
    page: Page[Node] = Paginator(nodes, settings.WND_FLEET_PAGE_SIZE).get_page(query.page)
    totals = nodes.aggregate(
        nodes=Count("id"),
        critical=Sum("critical_count"),
        warning=Sum("warning_count"),
        info=Sum("info_count"),
        healthy=Count("id", filter=Q(health="ok")),
        no_data=Count("id", filter=Q(health="unknown")),
    )
    return {
        "query": query,
        "page_obj": page,
        "totals": {k: v or 0 for k, v in totals.items()},
        "clusters": list(Cluster.objects.values_list("name", flat=True)),
        "severities": Severity.ordered(),
        "health_labels": dict(HEALTH_CHOICES),
        "checks": known_check_ids(),  # the engine's checks and the dashboard's own (node.agent-stale)
        "sources": source_states(),
    }
