"""The fleet list: filtering, ordering and paging shared by the page and its live consumer.

The default order is worst first across the whole fleet (health, then critical and warning
counts, then name); grouping by cluster is an option that only adds the cluster as the first
key. The summary counts nodes by health, then open findings by severity: two labelled units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from dashboard.cluster.pages import source_states
from dashboard.lifecycle import known_check_ids
from dashboard.models import HEALTH_CHOICES, Cluster, Finding, Node
from diagnostics.model import Severity, Status

SEVERITY_RANK = {s.slug: s.rank for s in Severity}

# Sortable columns: the key a visitor picks and the ordering it stands for (ascending).
SORTS: dict[str, tuple[str, ...]] = {
    "health": ("-health_rank", "-critical_count", "-warning_count", "-info_count", "name"),
    "name": ("name", "cluster__name"),
    "cluster": ("cluster__name", "-health_rank", "name"),
    "findings": ("-critical_count", "-warning_count", "-info_count", "name"),
    "report": ("last_report_at", "name"),
    "os": ("os_build", "name"),
}
DEFAULT_SORT = "health"


def _reverse(field: str) -> str:
    return field[1:] if field.startswith("-") else f"-{field}"


@dataclass(frozen=True)
class FleetQuery:
    """The fleet page's filters, order and grouping, from a query string."""

    q: str = ""
    cluster: str = ""
    severity: str = ""
    check: str = ""
    area: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = False
    group: bool = False
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> FleetQuery:
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        severity = params.get("severity", "")
        sort = params.get("sort", DEFAULT_SORT)
        descending = sort.startswith("-")
        sort = sort.lstrip("-")
        return cls(
            q=params.get("q", "").strip()[:100],
            cluster=params.get("cluster", "").strip()[:63],
            severity=severity if severity in {s.slug for s in Severity} else "",
            check=params.get("check", "").strip()[:100],
            area=params.get("area", "").strip()[:40],
            sort=sort if sort in SORTS else DEFAULT_SORT,
            descending=descending and sort in SORTS,
            group=params.get("group", "") == "cluster",
            page=page,
        )

    def params(self) -> dict[str, str]:
        sort = ("-" if self.descending else "") + self.sort
        values = {
            "q": self.q,
            "cluster": self.cluster,
            "severity": self.severity,
            "check": self.check,
            "area": self.area,
            "sort": "" if sort == DEFAULT_SORT else sort,
            "group": "cluster" if self.group else "",
        }
        return {k: v for k, v in values.items() if v}

    def querystring(self, **overrides: Any) -> str:
        values: dict[str, Any] = {**self.params(), **overrides}
        return urlencode({k: v for k, v in values.items() if v})

    def sort_link(self, key: str) -> str:
        """The query string that sorts by ``key``, reversing it when it is the current order."""
        descending = not self.descending if key == self.sort else False
        value = ("-" if descending else "") + key
        return self.querystring(sort="" if value == DEFAULT_SORT else value)

    def aria_sort(self, key: str) -> str:
        if key != self.sort:
            return "none"
        return "descending" if self.descending else "ascending"

    @property
    def ordering(self) -> tuple[str, ...]:
        fields = SORTS[self.sort]
        if self.descending:
            fields = (_reverse(fields[0]), *fields[1:])
        if self.group:
            fields = ("cluster__name", *fields)
        return fields

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.cluster or self.severity or self.check or self.area)


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
    if query.area:
        nodes = nodes.filter(open_checks__contains=f" {query.area}.")
    return nodes.order_by(*query.ordering)


@dataclass
class RowExtras:
    """What a fleet row shows beyond the node's own columns: its top finding and triage state."""

    top_title: str = ""
    top_severity: str = ""
    acknowledged: int = 0
    silenced: int = 0


def row_extras(nodes: list[Node]) -> dict[int, RowExtras]:
    """The top open finding and the acknowledged/silenced counts of each listed node (one query)."""
    extras: dict[int, RowExtras] = {n.pk: RowExtras() for n in nodes}
    if not extras:
        return extras
    now = timezone.now()
    rows = Finding.objects.filter(node_id__in=extras, resolved_at__isnull=True, status=Status.FAIL.slug).values_list(
        "node_id", "severity", "title", "check_id", "acknowledged_at", "silenced_until"
    )
    best: dict[int, tuple[int, str]] = {}
    for node_id, severity, title, check_id, acked, silenced_until in rows:
        extra = extras[node_id]
        key = (-SEVERITY_RANK.get(severity, 0), check_id)  # most severe, then the first check id
        if node_id not in best or key < best[node_id]:
            best[node_id] = key
            extra.top_title, extra.top_severity = title, severity
        if acked is not None:
            extra.acknowledged += 1
        if silenced_until is not None and silenced_until > now:
            extra.silenced += 1
    return extras


@dataclass(frozen=True)
class HeatCell:
    area: str
    nodes: int
    share: float  # of the cluster's nodes
    link: str
    level: int  # colour step 0..4 (0: no node affected)


@dataclass(frozen=True)
class HeatRow:
    cluster: str
    total: int
    cells: list[HeatCell]


def check_areas() -> list[str]:
    return sorted({c.split(".", 1)[0] for c in known_check_ids()})


def heatmap(areas: list[str]) -> list[HeatRow]:
    """Nodes with an open finding in each check area, per cluster (the whole fleet).

    One aggregate query: per cluster, the node count and one conditional count per area
    (``open_checks`` holds " id1 id2 ", so " <area>." marks the area).
    """
    counts = {f"a{i}": Count("id", filter=Q(open_checks__contains=f" {area}.")) for i, area in enumerate(areas)}
    rows = Node.objects.order_by().values("cluster__name").annotate(total=Count("id"), **counts)
    result = []
    for row in sorted(rows, key=lambda r: r["cluster__name"]):
        cluster, total = row["cluster__name"], row["total"]
        cells = []
        for i, area in enumerate(areas):
            count = row[f"a{i}"]
            share = count / total if total else 0.0
            link = urlencode({"cluster": cluster, "area": area})
            cells.append(HeatCell(area=area, nodes=count, share=share, link=link, level=heat_level(share, count)))
        result.append(HeatRow(cluster=cluster, total=total, cells=cells))
    return result


def heat_level(share: float, nodes: int) -> int:
    """A colour step 0..4 for a heatmap cell (0: no node affected)."""
    if nodes == 0:
        return 0
    return 1 + min(3, int(share * 4))


def _groups(nodes: list[Node], *, by_cluster: bool) -> list[dict[str, Any]]:
    """The listed nodes as table bodies: one per cluster when grouping, else one for all."""
    if not by_cluster:
        return [{"cluster": "", "nodes": nodes}]
    groups: list[dict[str, Any]] = []
    for node in nodes:
        if not groups or groups[-1]["cluster"] != node.cluster.name:
            groups.append({"cluster": node.cluster.name, "nodes": []})
        groups[-1]["nodes"].append(node)
    return groups


def fleet_context(query: FleetQuery) -> dict[str, Any]:
    """Everything the fleet page and its partials render."""
    nodes = nodes_for(query)
    page: Page[Node] = Paginator(nodes, settings.WND_FLEET_PAGE_SIZE).get_page(query.page)
    health = {slug: Count("id", filter=Q(health=slug)) for slug, _label in HEALTH_CHOICES}
    totals = nodes.order_by().aggregate(
        nodes=Count("id"),
        critical=Sum("critical_count"),
        warning=Sum("warning_count"),
        info=Sum("info_count"),
        **{f"health_{slug}": agg for slug, agg in health.items()},
    )
    totals = {k: v or 0 for k, v in totals.items()}
    listed = list(page.object_list)
    extras = row_extras(listed)
    for node in listed:
        node.extras = extras[node.pk]
    areas = check_areas()
    heat = heatmap(areas)
    labels = dict(HEALTH_CHOICES)
    return {
        "query": query,
        "page_obj": page,
        "groups": _groups(listed, by_cluster=query.group),
        "totals": totals,
        "health_cards": [
            {"slug": slug, "label": labels[slug], "count": totals[f"health_{slug}"]}
            for slug in ("critical", "warning", "info", "ok", "unknown")
        ],
        "finding_cards": [{"sev": s, "count": totals.get(s.slug, 0)} for s in Severity.ordered() if s.slug in totals],
        "clusters": list(Cluster.objects.values_list("name", flat=True)),
        "severities": Severity.ordered(),
        "health_labels": labels,
        "checks": known_check_ids(),  # the engine's checks and the dashboard's own (node.agent-stale)
        "areas": areas,
        "heatmap": heat,
        "sources": source_states(),
        "sorts": {key: (query.sort_link(key), query.aria_sort(key)) for key in SORTS},
    }
