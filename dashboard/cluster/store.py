"""The store: API objects kept in the database, so that every process sees the same cluster.

One ``Store`` per cluster lives in the watcher process. It writes what the
source lists and watches, keeps the few indexes it needs to classify objects
(which nodes are Windows, which node each stored pod is on), mirrors Windows
nodes into ``Node`` rows, and answers every change with what it affects, so that
only those nodes are diagnosed again.

What is stored: every Node (a non-Windows node only by name, labels and
``nodeInfo``), Service and EndpointSlice; the pods that are on a Windows node or
ask for Windows; the events about those nodes and pods. Other pods and events are
read and dropped. ``resources.trimmed`` drops what no check reads. Lists arrive
page by page (``begin_list``, ``add_page``, ``finish_list``): the store keeps the
keys of a list in progress, never its objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from dashboard.cluster.models import ApiObject, SourceState
from dashboard.cluster.resources import (
    BY_KIND,
    ENDPOINT_SLICES,
    EVENTS,
    NODES,
    PODS,
    SERVICES,
    Resource,
    is_windows_node,
    obj_meta,
    object_key,
    pod_asks_for_windows,
    trimmed,
)
from dashboard.cluster.source import Listing, WatchEvent
from dashboard.models import Cluster, Node
from diagnostics.report import NAME_RE

log = logging.getLogger(__name__)

BATCH = 500
_UNIQUE_FIELDS = ("cluster", "kind", "namespace", "name")
_UPDATED_FIELDS = ("uid", "resource_version", "node_name", "ref", "windows", "data", "updated_at")
_INSERTED_FIELDS = _UNIQUE_FIELDS + _UPDATED_FIELDS


@dataclass
class Affected:
    """What a change touches: Windows nodes whose API facts changed, pods to re-check, cluster-wide context.

    ``endpoints``: services or endpoint slices changed (what agent nodes' HNS state is compared with);
    ``peers``: a Windows node's versions or the server's changed (what every Windows node is compared with).
    """

    nodes: set[str] = field(default_factory=set)
    pods: set[tuple[str, str]] = field(default_factory=set)  # (namespace, name) upserted or deleted
    endpoints: bool = False
    peers: bool = False

    def __ior__(self, other: Affected) -> Affected:
        self.nodes |= other.nodes
        self.pods |= other.pods
        self.endpoints = self.endpoints or other.endpoints
        self.peers = self.peers or other.peers
        return self

    @property
    def cluster_wide(self) -> bool:
        return self.endpoints or self.peers

    @property
    def any(self) -> bool:
        return bool(self.nodes or self.pods or self.cluster_wide)


def _node_signature(node: dict[str, Any]) -> str:
    """A digest of what matters in a Node: heartbeats and resource versions change every few seconds."""
    meta = {k: v for k, v in obj_meta(node).items() if k not in ("resourceVersion", "managedFields")}
    status = dict(node.get("status") or {})
    status["conditions"] = [
        {k: v for k, v in c.items() if k not in ("lastHeartbeatTime",)}
        for c in status.get("conditions") or []
        if isinstance(c, dict)
    ]
    status.pop("images", None)
    body = {"metadata": meta, "spec": node.get("spec"), "status": status}
    return hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _peer_signature(node: dict[str, Any]) -> str:
    """What other nodes' checks compare (versions, build): a change here re-checks every Windows node."""
    info = (node.get("status") or {}).get("nodeInfo") or {}
    labels = obj_meta(node).get("labels") or {}
    keys = ("kernelVersion", "osImage", "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion")
    return "|".join([*(str(info.get(k, "")) for k in keys), str(labels.get("node.kubernetes.io/windows-build", ""))])


@dataclass
class _Listing:
    """What a list in progress has stored so far (keys and indexes only: its objects are in the database)."""

    keys: set[tuple[str, str]] = field(default_factory=set)
    pods: dict[tuple[str, str], str] = field(default_factory=dict)
    nodes: set[str] = field(default_factory=set)
    node_signatures: dict[str, str] = field(default_factory=dict)
    peer_signatures: dict[str, str] = field(default_factory=dict)
    changed: list[Node] = field(default_factory=list)


class Store:
    """The database copy of one cluster's API objects. Not thread-safe: one writer thread per store."""

    def __init__(self, cluster: str, *, notify: Callable[[list[Node]], None] | None = None) -> None:
        self.cluster = Cluster.objects.get_or_create(name=cluster)[0]
        self.notify = notify if notify is not None else _publish
        self.windows_nodes: set[str] = set()
        self.node_signatures: dict[str, str] = {}
        self.peer_signatures: dict[str, str] = {}
        self.pods: dict[tuple[str, str], str] = {}  # stored pods -> node name ("" when not bound)
        self.events: set[tuple[str, str]] = set()
        self._listing: dict[str, _Listing] = {}

    # -- classification -----------------------------------------------------

    def _row(self, resource: Resource, obj: dict[str, Any]) -> ApiObject | None:
        """The row for ``obj``, or None when it is not kept (a pod or event unrelated to Windows)."""
        meta = obj_meta(obj)
        name = str(meta.get("name") or "")
        if not name:
            return None
        namespace = str(meta.get("namespace") or "") if resource.namespaced else ""
        node_name = ref = ""
        windows = False
        if resource is NODES:
            node_name, windows = name, is_windows_node(obj)
        elif resource is PODS:
            spec = obj.get("spec") or {}
            node_name = str(spec.get("nodeName") or "")
            windows = node_name in self.windows_nodes or pod_asks_for_windows(spec)
            if not windows:
                return None
        elif resource is EVENTS:
            involved = obj.get("involvedObject") or {}
            kind = str(involved.get("kind") or "")
            target = str(involved.get("name") or "")
            if kind == "Node" and target in self.windows_nodes:
                node_name, ref = target, object_key("Node", "", target)
            elif kind == "Pod" and (str(involved.get("namespace") or ""), target) in self.pods:
                pod_ns = str(involved.get("namespace") or "")
                node_name, ref = self.pods[(pod_ns, target)], object_key("Pod", pod_ns, target)
            else:
                return None
            windows = True
        return ApiObject(
            cluster=self.cluster,
            kind=resource.kind,
            namespace=namespace,
            name=name,
            uid=str(meta.get("uid") or ""),
            resource_version=str(meta.get("resourceVersion") or ""),
            node_name=node_name,
            ref=ref,
            windows=windows,
            data=trimmed(obj, kept=windows or resource is not NODES),
            updated_at=timezone.now(),
        )

    # -- a full list, page by page --------------------------------------------

    def begin_list(self, resource: Resource) -> None:
        """A list of ``resource`` starts: pages follow (``add_page``), then ``finish_list``.

        A list that breaks off is simply begun again: its pages were current objects, and
        what the list no longer holds is deleted only when a list finishes.
        """
        self._listing[resource.kind] = _Listing()

    def add_page(self, resource: Resource, items: list[dict[str, Any]]) -> None:
        """Store one page of the list begun last for ``resource``."""
        listing = self._listing.setdefault(resource.kind, _Listing())
        rows: list[ApiObject] = []
        for obj in items:
            row = self._row(resource, obj)
            if row is not None:
                rows.append(row)
        with transaction.atomic():
            _upsert(rows)
        listing.keys.update((r.namespace, r.name) for r in rows)
        if resource is NODES:
            windows = [r for r in rows if r.windows]
            for row in windows:
                listing.node_signatures[row.name] = _node_signature(row.data)
                listing.peer_signatures[row.name] = _peer_signature(row.data)
            listing.changed.extend(self._mirror_nodes(windows))
        elif resource is PODS:
            listing.pods.update({(r.namespace, r.name): r.node_name for r in rows})
        elif resource is EVENTS:
            listing.nodes.update(r.node_name for r in rows if r.node_name)

    def finish_list(self, resource: Resource) -> Affected:
        """The list is complete: delete what it did not hold and return what it affects."""
        listing = self._listing.pop(resource.kind, None) or _Listing()
        keep = listing.keys
        existing = ApiObject.objects.filter(cluster=self.cluster, kind=resource.kind)
        stale = [pk for pk, ns, name in existing.values_list("pk", "namespace", "name") if (ns, name) not in keep]
        with transaction.atomic():
            for start in range(0, len(stale), BATCH):
                ApiObject.objects.filter(pk__in=stale[start : start + BATCH]).delete()
        affected = Affected()
        if resource is NODES:
            self.windows_nodes = set(listing.node_signatures)
            self.node_signatures = listing.node_signatures
            self.peer_signatures = listing.peer_signatures
            gone = Node.objects.filter(cluster=self.cluster, in_api=True).exclude(name__in=self.windows_nodes)
            self.notify(listing.changed + self._mark_gone(list(gone)))
            affected = Affected(nodes=set(self.windows_nodes), peers=True)
        elif resource is PODS:
            before = self.pods
            self.pods = listing.pods
            affected.pods = set(before) | set(self.pods)
            affected.nodes = {n for n in (*before.values(), *self.pods.values()) if n in self.windows_nodes}
        elif resource is EVENTS:
            self.events = keep
            affected.nodes = listing.nodes
        else:
            affected.endpoints = True
        return affected

    def replace(self, resource: Resource, listing: Listing) -> Affected:
        """Make the stored objects of ``resource`` exactly the listed ones (a whole list at once)."""
        self.begin_list(resource)
        for start in range(0, len(listing.items), BATCH):
            self.add_page(resource, listing.items[start : start + BATCH])
        return self.finish_list(resource)

    # -- one watch event -------------------------------------------------------

    def apply(self, resource: Resource, event: WatchEvent) -> Affected:
        """Apply one watch event; return what it affects."""
        if event.type not in ("ADDED", "MODIFIED", "DELETED"):
            return Affected()  # BOOKMARK: only a resource version
        if resource is NODES:
            return self._apply_node(event)
        meta = obj_meta(event.object)
        namespace = str(meta.get("namespace") or "") if resource.namespaced else ""
        key = (namespace, str(meta.get("name") or ""))
        row = None if event.type == "DELETED" else self._row(resource, event.object)
        if row is None:
            if resource is PODS and key in self.pods:
                node = self.pods.pop(key)
                self._delete(resource, key)
                return Affected(nodes={node} & self.windows_nodes, pods={key})
            if resource is EVENTS and key in self.events:
                self.events.discard(key)
                self._delete(resource, key)
            if resource in (SERVICES, ENDPOINT_SLICES) and event.type == "DELETED":
                self._delete(resource, key)
                return Affected(endpoints=True)
            return Affected()
        self._upsert(row)
        if resource is PODS:
            before = self.pods.get(key)
            self.pods[key] = row.node_name
            nodes = {row.node_name} | ({before} if before else set())
            return Affected(nodes=nodes & self.windows_nodes, pods={key})
        if resource is EVENTS:
            self.events.add(key)
            return Affected(nodes={row.node_name} if row.node_name else set())
        return Affected(endpoints=True)

    def _apply_node(self, event: WatchEvent) -> Affected:
        name = str(obj_meta(event.object).get("name") or "")
        if event.type == "DELETED" or not is_windows_node(event.object):
            row_gone = event.type == "DELETED"
            if row_gone:
                self._delete(NODES, ("", name))
            if name in self.windows_nodes:
                self.windows_nodes.discard(name)
                self.node_signatures.pop(name, None)
                self.peer_signatures.pop(name, None)
                if not row_gone:
                    row = self._row(NODES, event.object)
                    if row is not None:
                        self._upsert(row)
                self.notify(self._mark_gone(list(Node.objects.filter(cluster=self.cluster, name=name))))
                return Affected(peers=True)
            if not row_gone:
                row = self._row(NODES, event.object)
                if row is not None:
                    self._upsert(row)
            return Affected()
        signature = _node_signature(event.object)
        if self.node_signatures.get(name) == signature:
            return Affected()  # a heartbeat: nothing a check reads has changed
        row = self._row(NODES, event.object)
        if row is None:
            return Affected()
        self._upsert(row)
        self.windows_nodes.add(name)
        self.node_signatures[name] = signature
        peer = _peer_signature(event.object)
        peers_changed = self.peer_signatures.get(name) != peer
        self.peer_signatures[name] = peer
        self.notify(self._mirror_nodes([row]))
        return Affected(nodes={name}, peers=peers_changed)

    # -- writes ------------------------------------------------------------------

    def _upsert(self, row: ApiObject) -> None:
        _upsert([row])

    def _delete(self, resource: Resource, key: tuple[str, str]) -> None:
        ApiObject.objects.filter(cluster=self.cluster, kind=resource.kind, namespace=key[0], name=key[1]).delete()

    def _mirror_nodes(self, rows: Iterable[ApiObject]) -> list[Node]:
        """Create or update the ``Node`` rows of Windows nodes the API lists; return the ones that changed."""
        rows = [r for r in rows if NAME_RE.match(r.name)]
        existing = {n.name: n for n in Node.objects.filter(cluster=self.cluster, name__in=[r.name for r in rows])}
        created: list[Node] = []
        updated: list[Node] = []
        for row in rows:
            node = existing.get(row.name)
            if node is None:
                node = Node(cluster=self.cluster, name=row.name)
                created.append(node)
            elif node.in_api and node.api_removed_at is None and node.has_agent:
                continue  # the agent's facts win; the API part is read at diagnosis
            else:
                updated.append(node)
            node.in_api, node.api_removed_at = True, None
            if not node.has_agent:
                info = (row.data.get("status") or {}).get("nodeInfo") or {}
                node.os_build = str(info.get("kernelVersion", ""))[:64]
                node.os_name = str(info.get("osImage", ""))[:128]
                node.runtime_version = str(info.get("containerRuntimeVersion", ""))[:64]
                node.kubelet_version = str(info.get("kubeletVersion", ""))[:64]
        Node.objects.bulk_create(created, batch_size=BATCH)
        Node.objects.bulk_update(
            updated,
            ["in_api", "api_removed_at", "os_build", "os_name", "runtime_version", "kubelet_version"],
            batch_size=BATCH,
        )
        if created:
            created = list(Node.objects.filter(cluster=self.cluster, name__in=[n.name for n in created]))
        return created + updated

    def _mark_gone(self, nodes: list[Node]) -> list[Node]:
        """Nodes the API no longer lists: kept and marked when an agent or a token knows them, else removed."""
        now = timezone.now()
        marked: list[Node] = []
        if nodes:
            from dashboard import agents

            # Agents enrolled by their ServiceAccount token speak for a node of the cluster: cut them off.
            agents.cut_off([agents.reviewed_group(n) for n in nodes], "the node left the cluster")
        for node in nodes:
            if not node.has_agent and not node.tokens.exists():
                node.delete()
                continue
            node.in_api, node.api_removed_at = False, now
            node.save(update_fields=["in_api", "api_removed_at"])
            marked.append(node)
        return marked

    # -- state ---------------------------------------------------------------------

    def set_state(self, state: str, message: str = "", **fields: Any) -> None:
        """Record the source's state; an error keeps the time it started."""
        now = timezone.now()
        current = SourceState.objects.filter(cluster=self.cluster).first() or SourceState(cluster=self.cluster)
        if state == SourceState.ERROR and current.state != SourceState.ERROR:
            current.error_since = now
        elif state != SourceState.ERROR:
            current.error_since = None
        changed = current.state != state or current.message != message
        current.state, current.message, current.updated_at = state, message, now
        for name, value in fields.items():
            setattr(current, name, value)
        current.save()
        if changed:
            _publish([])


def _upsert(rows: list[ApiObject]) -> None:
    """Insert the rows, or update the stored ones of the same cluster, kind, namespace and name.

    One ``INSERT … ON CONFLICT … DO UPDATE`` for all of them (SQLite and PostgreSQL both
    speak it): what ``bulk_create(update_conflicts=True)`` sends, without its per-value
    preparation, which costs more CPU than the database at the size of a big cluster's lists.
    """
    if not rows:
        return
    sql, fields = _upsert_statement()
    params = [[f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


@cache
def _upsert_statement() -> tuple[str, list[Field[Any, Any]]]:
    """The statement of ``_upsert`` and the fields of its parameters, in order (built once)."""
    by_name = {f.name: f for f in ApiObject._meta.concrete_fields}
    fields = [by_name[name] for name in _INSERTED_FIELDS]
    quote = connection.ops.quote_name
    columns = [quote(f.column) for f in fields]
    updated = ", ".join(
        f"{c} = excluded.{c}" for f, c in zip(fields, columns, strict=True) if f.name in _UPDATED_FIELDS
    )
    unique = ", ".join(quote(by_name[name].column) for name in _UNIQUE_FIELDS)
    sql = (
        f"INSERT INTO {quote(ApiObject._meta.db_table)} ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT ({unique}) DO UPDATE SET {updated}"
    )
    return sql, fields


def _publish(nodes: list[Node]) -> None:
    """Tell the fleet page (and the pages of changed nodes); a missing channel layer only loses live updates."""
    from dashboard import live

    messages: list[tuple[str, dict[str, Any]]] = [
        (n.group, {"type": "node.changed", "node_id": n.pk}) for n in nodes[:200]
    ]
    messages.append((live.FLEET_GROUP, {"type": "fleet.changed", "node_id": nodes[0].pk if nodes else 0}))
    try:
        live.publish_many(messages)
    except Exception:  # Redis down must not stop the watches; the pages resync on their next message
        log.warning("could not publish cluster changes", exc_info=True)


def kind_resource(kind: str) -> Resource:
    return BY_KIND[kind]
