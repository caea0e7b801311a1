"""``SimulatedSource``: a recorded cluster behind the same seam, for the demo, the tests and the bench.

It keeps objects in memory with a resource-version counter shared by all kinds
(as etcd does), answers ``list`` and ``watch`` like an API server (including
``Gone`` when history was compacted), and can be changed while it is watched:
``apply`` adds, changes or deletes an object; ``fail`` makes every call raise
(API down, or RBAC too narrow) until ``recover``.

A recorded cluster is a directory of the API's list responses:
``version.json`` (``GET /version``), ``nodes.json``, ``pods.json``,
``events.json``, ``services.json`` and ``endpointslices.json``.
"""

from __future__ import annotations

import builtins
import copy
import json
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dashboard.cluster.resources import BY_KIND, RESOURCES, Resource, obj_meta
from dashboard.cluster.source import Gone, Listing, Page, SourceError, WatchEvent

RECORDED = Path(__file__).resolve().parent / "recorded"
FILES = {"Node": "nodes.json", "Pod": "pods.json", "Event": "events.json", "Service": "services.json",
         "EndpointSlice": "endpointslices.json"}  # fmt: skip
PAGE = 500  # objects per page of a list, as the watcher asks a real API server
HISTORY = 10_000  # watch events kept per kind; older resource versions get Gone


class SimulatedSource:
    """An in-memory API server for one cluster."""

    def __init__(
        self,
        cluster: str,
        objects: dict[str, list[dict[str, Any]]],
        *,
        version: str = "v1.30.4",
        watch_seconds: float = 30.0,
        description: str = "",
    ) -> None:
        self.cluster = cluster
        self.description = description or f"simulated cluster {cluster}"
        self.version = version
        self.watch_seconds = watch_seconds  # a server ends each watch after a while; the client watches again
        self._cond = threading.Condition()
        self._rv = 1000
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r.kind: {} for r in RESOURCES}
        self._history: dict[str, deque[tuple[int, WatchEvent]]] = {r.kind: deque(maxlen=HISTORY) for r in RESOURCES}
        self._oldest: dict[str, int] = {r.kind: 0 for r in RESOURCES}  # watches from before this get Gone
        self._failure: SourceError | None = None
        for kind, items in objects.items():  # the source owns these objects from now on (no copies: big clusters)
            for obj in items:
                self._rv += 1
                obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
                self._objects[kind][_key(BY_KIND[kind], obj)] = obj
        for kind in self._oldest:
            self._oldest[kind] = self._rv

    @classmethod
    def recorded(cls, cluster: str, directory: Path | None = None, **options: Any) -> SimulatedSource:
        """Load a recorded cluster (default: the demo's recording of ``cluster``)."""
        directory = directory if directory is not None else RECORDED / cluster
        if not directory.is_dir():
            raise ValueError(f"no recorded cluster at {directory}")
        objects: dict[str, list[dict[str, Any]]] = {}
        for kind, name in FILES.items():
            path = directory / name
            if path.exists():
                objects[kind] = list(json.loads(path.read_text()).get("items") or [])
        version_file = directory / "version.json"
        version = json.loads(version_file.read_text())["gitVersion"] if version_file.exists() else "v1.30.4"
        return cls(cluster, objects, version=version, description=f"simulated cluster {cluster} ({directory.name})")

    # -- the seam ------------------------------------------------------------------

    def server_version(self) -> str:
        self._check()
        return self.version

    def list(self, resource: Resource) -> Listing:
        self._check(resource)
        with self._cond:
            # The objects themselves, not copies (a large cluster would need twice the memory):
            # readers must not change them, and ``apply`` replaces objects rather than editing them.
            items = list(self._objects[resource.kind].values())
            return Listing(items=items, resource_version=str(self._rv))

    def pages(self, resource: Resource) -> Iterator[Page]:
        listing = self.list(resource)
        for start in range(0, max(len(listing.items), 1), PAGE):
            last = start + PAGE >= len(listing.items)
            yield Page(items=listing.items[start : start + PAGE], resource_version=listing.resource_version, last=last)

    def close(self) -> None:
        """Nothing to cut: simulated watches look at ``stop`` every 0.1 s."""

    def watch(self, resource: Resource, resource_version: str, stop: threading.Event) -> Iterator[WatchEvent]:
        self._check(resource)
        since = int(resource_version or 0)
        with self._cond:
            if since < self._oldest[resource.kind]:
                raise Gone(f"too old resource version: {since} ({self._oldest[resource.kind]})")
        yield WatchEvent("OPEN", {})
        deadline = _now() + self.watch_seconds
        while not stop.is_set() and _now() < deadline:
            with self._cond:
                pending = [e for rv, e in self._history[resource.kind] if rv > since]
                if not pending:
                    self._cond.wait(timeout=0.1)
                    failure = self._failure
                    if failure is not None:
                        raise failure
                    continue
            for event in pending:
                since = int(event.resource_version or since)
                yield event

    # -- changing the cluster -----------------------------------------------------------

    def apply(self, kind: str, obj: dict[str, Any], event_type: str = "") -> WatchEvent:
        """Add, change (``MODIFIED``) or delete (``DELETED``) an object; watchers see it."""
        resource = BY_KIND[kind]
        with self._cond:
            key = _key(resource, obj)
            exists = key in self._objects[kind]
            kind_of_change = event_type or ("MODIFIED" if exists else "ADDED")
            self._rv += 1
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
            if kind_of_change == "DELETED":
                self._objects[kind].pop(key, None)
            else:
                self._objects[kind][key] = obj
            event = WatchEvent(kind_of_change, {"kind": kind, "apiVersion": resource.api_version, **obj})
            self._history[kind].append((self._rv, event))
            self._cond.notify_all()
            return event

    def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any]:
        with self._cond:
            return copy.deepcopy(self._objects[kind][(namespace, name)])

    def objects(self, kind: str) -> builtins.list[dict[str, Any]]:
        with self._cond:
            return [copy.deepcopy(o) for o in self._objects[kind].values()]

    def compact(self) -> None:
        """Forget the watch history (as etcd compaction does): resuming from before now gets Gone."""
        with self._cond:
            for kind in self._history:
                self._history[kind].clear()
                self._oldest[kind] = self._rv

    def fail(self, error: SourceError) -> None:
        """Make every call (and open watches) raise ``error`` until ``recover``."""
        with self._cond:
            self._failure = error
            self._cond.notify_all()

    def recover(self) -> None:
        with self._cond:
            self._failure = None

    def tick(self) -> None:
        """One step of the demo's life: warning events about failing sandboxes happen again."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for event in self.objects("Event"):
            if event.get("type") == "Warning" and event.get("reason") == "FailedCreatePodSandBox":
                event["count"] = int(event.get("count") or 1) + 1
                event["lastTimestamp"] = stamp
                self.apply("Event", event)

    def _check(self, resource: Resource | None = None) -> None:
        failure = self._failure
        if failure is not None:
            raise failure


def _key(resource: Resource, obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj_meta(obj)
    return (str(meta.get("namespace") or "") if resource.namespaced else "", str(meta.get("name") or ""))


def _now() -> float:
    import time

    return time.monotonic()


def recorded_clusters() -> list[str]:
    """Names of the clusters recorded for the demo."""
    return sorted(p.name for p in RECORDED.iterdir() if p.is_dir()) if RECORDED.is_dir() else []
