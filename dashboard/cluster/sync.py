"""Running the watches: one ``ClusterSync`` per cluster, all in one process (``manage.py watch_cluster``).

Per cluster, one thread per kind does the network part (list, then watch from
the list's resource version, resume after a dropped connection, list again after
``Gone``, back off while the API is down or forbids) and hands what it gets to
one writer thread. The writer applies it to the ``Store`` in order, keeps the
cluster's ``SourceState`` current, and after a short pause re-diagnoses what the
changes affect. A cluster that is down only stalls its own threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import close_old_connections, connection
from django.utils import timezone

from dashboard.cluster.diagnose import (
    ENDPOINT_CHECKS,
    PEER_CHECKS,
    check_all_workloads,
    check_workloads,
    recheck_nodes,
)
from dashboard.cluster.models import SourceState
from dashboard.cluster.resources import NODES, RESOURCES, Resource
from dashboard.cluster.source import ClusterSource, Forbidden, Gone, Listing, SourceError, Unavailable, WatchEvent
from dashboard.cluster.store import Affected, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """How the sync paces itself; tests shorten everything."""

    backoff_first: float = 1.0  # seconds before the first retry after an error
    backoff_max: float = 60.0
    settle: float = 0.3  # wait this long after a change before diagnosing, to batch a burst
    cluster_wide_every: float = 10.0  # at most one re-run of the cluster-wide checks this often
    state_every: float = 5.0  # at most one write of last_event_at this often


@dataclass
class _Kind:
    listed: bool = False
    error: SourceError | None = None


@dataclass
class ClusterSync:
    """Keeps one cluster's store current; ``run`` blocks until ``stop`` is set."""

    source: ClusterSource
    stop: threading.Event = field(default_factory=threading.Event)
    timing: Timing = field(default_factory=Timing)
    diagnose: bool = True  # re-run checks on what changes (off in tests that look at the store only)
    cluster_cidr: str = ""
    service_cidr: str = ""
    on_flush: Callable[[Affected], None] | None = None  # called after each batch is diagnosed (tests, bench)

    def __post_init__(self) -> None:
        self.inbox: queue.Queue[tuple[str, Resource | None, Any]] = queue.Queue()
        self.kinds = {r.kind: _Kind() for r in RESOURCES}
        self.threads: list[threading.Thread] = []

    # -- the network side: one thread per kind ----------------------------------------

    def _watch_kind(self, resource: Resource) -> None:
        resource_version = ""
        delay = self.timing.backoff_first
        while not self.stop.is_set():
            try:
                if not resource_version:
                    if resource is NODES:
                        self.inbox.put(("version", None, self._server_version()))
                    listing = self.source.list(resource)
                    self.inbox.put(("listed", resource, listing))
                    resource_version = listing.resource_version
                for event in self.source.watch(resource, resource_version, self.stop):
                    if event.type == "OPEN":
                        self.inbox.put(("ok", resource, None))
                        delay = self.timing.backoff_first
                        continue
                    if event.resource_version:
                        resource_version = event.resource_version
                    if event.type != "BOOKMARK":
                        self.inbox.put(("event", resource, event))
            except Gone:
                log.info("%s: %s watch expired; listing again", self.source.cluster, resource.plural)
                resource_version = ""
            except SourceError as exc:
                self.inbox.put(("error", resource, exc))
                self.stop.wait(delay)
                delay = min(delay * 2, self.timing.backoff_max)
            except Exception as exc:  # a bug or an unexpected reply must not end the watch for good
                log.exception("%s: watching %s failed", self.source.cluster, resource.plural)
                self.inbox.put(("error", resource, Unavailable(f"{type(exc).__name__}: {exc}")))
                self.stop.wait(delay)
                delay = min(delay * 2, self.timing.backoff_max)

    def _server_version(self) -> str:
        """The API server's version; checks that need it say "unknown" when it cannot be read."""
        try:
            return self.source.server_version()
        except Unavailable as exc:
            log.warning("%s: no server version: %s", self.source.cluster, exc)
            return ""

    # -- the writer --------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.stop.set()
            for thread in self.threads:
                thread.join(timeout=5)
            try:
                self.store.set_state(SourceState.STOPPED, "The watcher stopped.")
            except Exception:
                log.warning("could not record the stopped state of %s", self.source.cluster, exc_info=True)
            connection.close()

    def _run(self) -> None:
        resource: Resource | None
        self.store = Store(self.source.cluster)
        self.store.set_state(
            SourceState.CONNECTING,
            f"Connecting to {self.source.description}.",
            source=self.source.description[:200],
            cluster_cidr=self.cluster_cidr,
            service_cidr=self.service_cidr,
        )
        for resource in RESOURCES:
            thread = threading.Thread(
                target=self._watch_kind, args=(resource,), name=f"watch {self.source.cluster} {resource.plural}"
            )
            thread.daemon = True
            thread.start()
            self.threads.append(thread)
        pending = Affected()
        pending_since = 0.0
        full_sync_pending = True
        last_cluster_wide = 0.0
        last_state_write = 0.0
        drained = 0
        while not self.stop.is_set():
            try:
                what, resource, payload = self.inbox.get(timeout=0.1)
            except queue.Empty:
                what, resource, payload = "", None, None
            now = time.monotonic()
            if what:
                close_old_connections()
                affected, state_changed = self._handle(what, resource, payload)
                if affected.any and not pending.any:
                    pending_since = now
                pending |= affected
                if state_changed:
                    self._write_state()
                elif what == "event" and now - last_state_write > self.timing.state_every:
                    SourceState.objects.filter(cluster=self.store.cluster).update(last_event_at=timezone.now())
                    last_state_write = now
                drained += 1
                if not self.inbox.empty() and drained < 1000:
                    continue  # drain a burst before diagnosing
            drained = 0
            if not all(k.listed for k in self.kinds.values()):
                continue  # diagnose only once every kind is known
            if full_sync_pending:
                full_sync_pending = False
                pending = Affected(nodes=set(self.store.windows_nodes), pods=set(self.store.pods))
                self._flush(pending, full=True)
                pending, last_cluster_wide = Affected(), now
                continue
            if pending.any and now - pending_since >= self.timing.settle:
                wide = pending.cluster_wide and now - last_cluster_wide >= self.timing.cluster_wide_every
                if pending.cluster_wide and not wide and not (pending.nodes or pending.pods):
                    continue  # cluster-wide work waits for its turn
                self._flush(pending, cluster_wide=wide)
                if wide:
                    last_cluster_wide = now
                pending = Affected(endpoints=pending.endpoints and not wide, peers=pending.peers and not wide)
                pending_since = now

    def _handle(self, what: str, resource: Resource | None, payload: Any) -> tuple[Affected, bool]:
        """Apply one message from a kind's thread; return what it affects and whether the state changed."""
        if what == "version":
            SourceState.objects.filter(cluster=self.store.cluster).update(server_version=str(payload)[:64])
            return Affected(peers=True), False
        assert resource is not None
        kind = self.kinds[resource.kind]
        if what == "error":
            changed = kind.error is None or str(kind.error) != str(payload)
            kind.error = payload
            log.warning("%s: %s: %s", self.source.cluster, resource.plural, payload)
            return Affected(), changed
        recovered = kind.error is not None
        kind.error = None
        if what == "listed":
            assert isinstance(payload, Listing)
            first = not all(k.listed for k in self.kinds.values())
            kind.listed = True
            affected = self.store.replace(resource, payload)
            done = all(k.listed for k in self.kinds.values())
            return affected, recovered or (first and done)
        if what == "event":
            assert isinstance(payload, WatchEvent)
            return self.store.apply(resource, payload), recovered
        return Affected(), recovered  # "ok": the watch is open again

    def _write_state(self) -> None:
        errors = [k.error for k in self.kinds.values() if k.error is not None]
        forbidden = [e for e in errors if isinstance(e, Forbidden)]
        if errors:
            first = (forbidden or errors)[0]
            others = len(errors) - 1
            message = str(first) + (f" ({others} other kind{'s' if others > 1 else ''} failing too.)" if others else "")
            self.store.set_state(SourceState.ERROR, message)
        elif all(k.listed for k in self.kinds.values()):
            self.store.set_state(SourceState.CONNECTED, "", last_sync_at=timezone.now())
        else:
            listed = sum(k.listed for k in self.kinds.values())
            self.store.set_state(SourceState.SYNCING, f"Listed {listed} of {len(self.kinds)} kinds.")

    def _flush(self, affected: Affected, *, full: bool = False, cluster_wide: bool = False) -> None:
        if self.diagnose:
            cluster = self.store.cluster
            try:
                if full:
                    check_all_workloads(cluster)
                    recheck_nodes(cluster, sorted(self.store.windows_nodes))
                else:
                    check_workloads(cluster, sorted(affected.pods))
                    recheck_nodes(cluster, sorted(affected.nodes))
                    if cluster_wide:
                        # Each kind of context change re-runs only the checks that read it, where they can change.
                        others = sorted(self.store.windows_nodes - affected.nodes)
                        if affected.endpoints:
                            recheck_nodes(cluster, others, only=ENDPOINT_CHECKS, agents_only=True)
                        if affected.peers:
                            recheck_nodes(cluster, others, only=PEER_CHECKS)
            except Exception:  # diagnosis failing must not stop the watches; the next change retries
                log.exception("%s: diagnosis after API changes failed", self.source.cluster)
        if self.on_flush is not None:
            self.on_flush(affected)


class Watcher:
    """Every configured cluster, each in its own thread."""

    def __init__(self, syncs: Sequence[ClusterSync]) -> None:
        self.syncs = list(syncs)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for sync in self.syncs:
            sync.stop = self.stop
            thread = threading.Thread(target=sync.run, name=f"cluster {sync.source.cluster}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)
