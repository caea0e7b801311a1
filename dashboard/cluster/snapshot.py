"""The API half of a node's snapshot, from the stored objects.

``api_base_snapshot(node)`` is what diagnosis passes as ``base`` to
``snapshot_from_report``: the Node object, the pods bound to the node, the
events about the node and its pods, and a ``ClusterView`` (services, endpoint
slices, the other Windows nodes, the server version). ``None`` when the API has
never listed the node, so that a cluster without a source changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.db.models import Q

from dashboard.cluster.models import ApiObject, SourceState
from dashboard.cluster.resources import object_key
from dashboard.models import Node
from diagnostics.snapshot import ClusterView, Fact, NodeSnapshot, PeerSummary, client_ip_affinity, count_peer_facts


def api_source(cluster: str) -> str:
    """How evidence names the API as a source: ``api:<cluster>``, then ``Kind/namespace/name``."""
    return f"api:{cluster}"


@dataclass(frozen=True)
class _Revision:
    """What ``ClusterContext.current`` compares: (count, last update, highest id) of each part."""

    peers: tuple[Any, ...]
    services: tuple[Any, ...]
    state: tuple[str, str, str]  # server version, cluster and service CIDRs


_CONTEXTS: dict[int, tuple[_Revision, ClusterContext]] = {}


def peer_summary(cluster: str, name: str, node: dict[str, Any]) -> PeerSummary:
    """A Windows node as its peers' ``node.config-drift`` sees it, from its Node object."""
    from diagnostics.checks.node import peer_facts

    snap = NodeSnapshot(node=name, cluster=cluster, node_object=Fact(node, f"{api_source(cluster)} Node/{name}"))
    return PeerSummary(node=name, facts=peer_facts(snap))


def _load_services(cluster_id: int) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]:
    """The cluster's Service and EndpointSlice objects, by namespace and name."""
    rows = ApiObject.objects.filter(cluster_id=cluster_id, kind__in=["Service", "EndpointSlice"]).order_by(
        "kind", "namespace", "name"
    )
    services: list[dict[str, Any]] = []
    slices: list[dict[str, Any]] = []
    for kind, data in rows.values_list("kind", "data"):
        (services if kind == "Service" else slices).append(data)
    return tuple(services), tuple(slices)


def _load_peers(cluster_id: int, cluster: str) -> tuple[PeerSummary, ...]:
    """Every Windows node of the cluster as its peers see it, by name."""
    nodes = dict(ApiObject.objects.filter(cluster_id=cluster_id, kind="Node", windows=True).values_list("name", "data"))
    return tuple(peer_summary(cluster, name, data) for name, data in sorted(nodes.items()))


@dataclass(frozen=True)
class ClusterContext:
    """What every node of one cluster shares: built once per cluster and reused for each node."""

    cluster: str
    server_version: str
    services: tuple[dict[str, Any], ...]
    endpoint_slices: tuple[dict[str, Any], ...]
    peers: tuple[PeerSummary, ...]  # every Windows node of the cluster
    cluster_cidr: str
    service_cidr: str

    @classmethod
    def load(cls, cluster_id: int, cluster: str) -> ClusterContext:
        services, slices = _load_services(cluster_id)
        state = SourceState.objects.filter(cluster_id=cluster_id).first()
        return cls(
            cluster=cluster,
            server_version=state.server_version if state else "",
            services=services,
            endpoint_slices=slices,
            peers=_load_peers(cluster_id, cluster),
            # The API does not publish these; the cluster's configuration may (WND_CLUSTERS).
            cluster_cidr=state.cluster_cidr if state else "",
            service_cidr=state.service_cidr if state else "",
        )

    @classmethod
    def current(cls, cluster_id: int, cluster: str) -> ClusterContext:
        """``load``, reused while the cluster's services, slices, Windows nodes and version are unchanged.

        The revision is read in one aggregate query; a pod or event change (the usual burst) keeps it.
        Services and slices, and the Windows nodes, have revisions of their own: a node's change reloads
        the peers only, a slice's change the services and slices only.
        """
        from django.db.models import Count, Max

        is_node = Q(kind="Node")
        revision = (
            ApiObject.objects.filter(cluster_id=cluster_id)
            .filter(Q(kind__in=["Service", "EndpointSlice"]) | Q(kind="Node", windows=True))
            .aggregate(
                nodes=Count("id", filter=is_node),
                nodes_last=Max("updated_at", filter=is_node),
                nodes_top=Max("id", filter=is_node),
                services=Count("id", filter=~is_node),
                services_last=Max("updated_at", filter=~is_node),
                services_top=Max("id", filter=~is_node),
            )
        )
        state = SourceState.objects.filter(cluster_id=cluster_id).values_list(
            "server_version", "cluster_cidr", "service_cidr"
        )
        server_version, cluster_cidr, service_cidr = state.first() or ("", "", "")
        key = _Revision(
            peers=(revision["nodes"], revision["nodes_last"], revision["nodes_top"]),
            services=(revision["services"], revision["services_last"], revision["services_top"]),
            state=(server_version, cluster_cidr, service_cidr),
        )
        cached = _CONTEXTS.get(cluster_id)
        old_key, old = cached if cached is not None and cached[1].cluster == cluster else (None, None)
        if old is not None and old_key == key:
            return old
        if old is not None and old_key is not None and old_key.services == key.services:
            services, slices = old.services, old.endpoint_slices
        else:
            services, slices = _load_services(cluster_id)
        if old is not None and old_key is not None and old_key.peers == key.peers:
            peers = old.peers
        else:
            peers = _load_peers(cluster_id, cluster)
        context = cls(
            cluster=cluster,
            server_version=server_version,
            services=services,
            endpoint_slices=slices,
            peers=peers,
            cluster_cidr=cluster_cidr,
            service_cidr=service_cidr,
        )
        _CONTEXTS[cluster_id] = (key, context)
        return context

    @cached_property
    def _peer_index(self) -> dict[str, int]:
        return {p.node: i for i, p in enumerate(self.peers)}

    @cached_property
    def _peer_counts(self) -> dict[str, dict[str, int]]:
        """Every Windows node's peer facts counted once for the cluster (``node.config-drift`` reads them)."""
        return count_peer_facts(self.peers)

    @cached_property
    def _affinity_services(self) -> tuple[dict[str, Any], ...]:
        return client_ip_affinity(self.services)

    def view_for(self, node: str) -> ClusterView:
        """The cluster as ``node`` sees it: its peers are the other Windows nodes."""
        at = self._peer_index.get(node)
        peers = self.peers if at is None else self.peers[:at] + self.peers[at + 1 :]
        return ClusterView(
            peer_counts=self._peer_counts,
            own=self.peers[at] if at is not None else None,
            server_version=self.server_version,
            cluster_cidr=self.cluster_cidr,
            service_cidr=self.service_cidr,
            services=self.services,
            affinity_services=self._affinity_services,
            endpoint_slices=self.endpoint_slices,
            peers=peers,
            source=api_source(self.cluster),
        )


def api_base_snapshots(
    nodes: list[Node], context: ClusterContext, *, workloads: bool = True
) -> dict[str, NodeSnapshot]:
    """``api_base_snapshot`` for many nodes of one cluster in a constant number of queries.

    ``workloads=False`` leaves out the pods and events (``pods`` and ``events`` are None, "not
    collected"): for checks that never read them, whose callers would otherwise pay for reading every
    pod of every node.
    """
    if not nodes:
        return {}
    cluster_id = nodes[0].cluster_id
    names = [n.name for n in nodes]
    source = api_source(context.cluster)
    objects = dict(
        ApiObject.objects.filter(cluster_id=cluster_id, kind="Node", name__in=names).values_list("name", "data")
    )
    pods: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    events: dict[str, list[dict[str, Any]]] = {}
    if workloads:
        for node_name, ns, name, data in (
            ApiObject.objects.filter(cluster_id=cluster_id, kind="Pod", node_name__in=names)
            .order_by("namespace", "name")
            .values_list("node_name", "namespace", "name", "data")
        ):
            pods.setdefault(node_name, []).append((ns, name, data))
        owner = {object_key("Node", "", n): n for n in names}
        owner.update({object_key("Pod", ns, name): n for n, found in pods.items() for ns, name, _ in found})
        for ref, data in (
            ApiObject.objects.filter(cluster_id=cluster_id, kind="Event", node_name__in=names)
            .order_by("namespace", "name")
            .values_list("ref", "data")
        ):
            if ref in owner:
                events.setdefault(owner[ref], []).append(data)
    out: dict[str, NodeSnapshot] = {}
    for name in names:
        if name not in objects:
            continue
        out[name] = NodeSnapshot(
            node=name,
            cluster=context.cluster,
            node_object=Fact(objects[name], f"{source} Node/{name}"),
            pods=Fact(tuple(data for _ns, _name, data in pods.get(name, [])), source) if workloads else None,
            events=Fact(tuple(events.get(name, [])), source) if workloads else None,
            cluster_view=context.view_for(name),
        )
    return out


def api_base_snapshot(node: Node, context: ClusterContext | None = None) -> NodeSnapshot | None:
    """The API facts about ``node``, or None when the API has never listed it.

    ``context`` (from ``ClusterContext.load``) saves reloading services and
    slices when many nodes of one cluster are diagnosed together.
    """
    cluster = node.cluster.name
    node_row = (
        ApiObject.objects.filter(cluster_id=node.cluster_id, kind="Node", name=node.name).values_list("data").first()
    )
    if node_row is None:
        return None
    source = api_source(cluster)
    pods = list(
        ApiObject.objects.filter(cluster_id=node.cluster_id, kind="Pod", node_name=node.name)
        .order_by("namespace", "name")
        .values_list("namespace", "name", "data")
    )
    refs = [object_key("Node", "", node.name), *(object_key("Pod", ns, name) for ns, name, _ in pods)]
    events = list(
        ApiObject.objects.filter(cluster_id=node.cluster_id, kind="Event", ref__in=refs)
        .order_by("namespace", "name")
        .values_list("data", flat=True)
    )
    if context is None:
        context = ClusterContext.current(node.cluster_id, cluster)
    return NodeSnapshot(
        node=node.name,
        cluster=cluster,
        node_object=Fact(node_row[0], f"{source} Node/{node.name}"),
        pods=Fact(tuple(data for _ns, _name, data in pods), source),
        events=Fact(tuple(events), source),
        cluster_view=context.view_for(node.name),
    )
