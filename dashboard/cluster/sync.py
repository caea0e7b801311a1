"""Running the watches: one ``ClusterSync`` per cluster, all in one process (``manage.py watch_cluster``).

Per cluster, one thread per kind does the network part (list, then watch from
the list's resource version, resume after a dropped connection, list again after
``Gone``, back off while the API is down or forbids) and hands what it gets to
one writer thread; one more thread asks the server's version (at start, after a
reconnection, and every few minutes). The writer applies it all to the ``Store``
in order, keeps the cluster's ``SourceState`` current, and after a short pause
re-diagnoses what the changes affect. A cluster that is down only stalls its own
threads.

The start is ordered: Pods are listed once the Nodes list has been read, Events
once the Pods list has, because what is kept of them depends on those (a Pod on a
Windows node, an Event about a kept Pod). So a restart with no change in the
cluster stores the same objects and changes no finding. Lists go to the writer
page by page. Retries share one schedule per cluster (capped at 30 s, jittered,
one log line per step), and a 403 right after the server was unreachable is
shown as the server starting until it persists. Stopping cuts the watch streams at
once and ends a diagnosis in progress between two batches of nodes.
"""

from __future__ import annotations

import gc
import logging
import queue
import random
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
from dashboard.cluster.resources import EVENTS, NODES, PODS, RESOURCES, Resource
from dashboard.cluster.source import ClusterSource, Forbidden, Gone, SourceError, Unavailable, WatchEvent
from dashboard.cluster.store import Affected, Store

log = logging.getLogger(__name__)

NODES_PER_BATCH = 100  # Windows nodes diagnosed at once after a change that touches many


@dataclass(frozen=True)
class Timing:
    """How the sync paces itself; tests shorten everything."""

    backoff_first: float = 0.8  # seconds before the first retry after an error (client-go's 800 ms)
    backoff_max: float = 30.0  # client-go's cap; each wait is jittered between half and all of it
    settle: float = 0.3  # wait this long after a change before diagnosing, to batch a burst
    cluster_wide_every: float = 10.0  # at most one re-run of the cluster-wide checks this often
    state_every: float = 5.0  # at most one write of last_event_at this often
    version_every: float = 300.0  # ask the server's version this often (and at every reconnect)
    # Look at the database connection this often, not at every message: with CONN_MAX_AGE=0
    # Django's check closes it each time, and a list would reconnect at every page.
    connection_check_every: float = 5.0
    # A 403 this soon after the API server was unreachable is a server whose authorization
    # caches are still loading (kube-apiserver answers so for a few seconds after a start).
    starting_grace: float = 30.0
    stop_within: float = 1.0  # after stop, wait at most this long for the network threads


class Starting(Unavailable):
    """A 403 right after the API server was unreachable: it is starting; retried like ``Unavailable``."""

    def __init__(self, forbidden: Forbidden) -> None:
        self.forbidden = forbidden
        super().__init__(
            f"The API server is starting: it refused to {forbidden.permission} right after it was unreachable, "
            "as it does until its authorization caches are loaded."
        )


class _Backoff:
    """One retry schedule for a source's connection: every kind waits for the same next try.

    The first kind that fails in a step starts the step and writes the one log line
    of it; kinds that fail within the step wait for the same moment. A kind that gets
    through ends the schedule, which wakes the others at once.
    """

    def __init__(self, timing: Timing, cluster: str) -> None:
        self.timing = timing
        self.cluster = cluster
        self._lock = threading.Lock()
        self._delay = 0.0
        self.next_try = 0.0
        self.last_unavailable = -1e9

    def failed(self, error: SourceError) -> None:
        now = time.monotonic()
        with self._lock:
            if not isinstance(error, Starting) and isinstance(error, Unavailable):
                self.last_unavailable = now
            if now < self.next_try:
                return  # this step is already counted and logged
            self._delay = min(self._delay * 2, self.timing.backoff_max) if self._delay else self.timing.backoff_first
            wait = self._delay * (0.5 + random.random() / 2)
            self.next_try = now + wait
        log.warning("%s: %s Retrying in %.1f s.", self.cluster, str(error).rstrip("."), wait)

    def succeeded(self) -> None:
        with self._lock:
            self._delay, self.next_try = 0.0, 0.0

    def wait(self, stop: threading.Event) -> None:
        while not stop.is_set():
            remaining = self.next_try - time.monotonic()
            if remaining <= 0:
                return
            stop.wait(min(remaining, 0.1))


@dataclass
class _Kind:
    listed: bool = False
    error: SourceError | None = None


# Which kinds' lists must be read before a kind's own list: a Pod is kept when its node is a
# Windows node, an Event when the pod or node it is about is kept.
AFTER: dict[str, tuple[str, ...]] = {PODS.kind: (NODES.kind,), EVENTS.kind: (NODES.kind, PODS.kind)}


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
        self.backoff = _Backoff(self.timing, self.source.cluster)
        # Set once a kind's first list has been read whole (or failed for lack of permission):
        # the kinds of ``AFTER`` wait for it before listing.
        self.first_list = {r.kind: threading.Event() for r in RESOURCES}
        self.relist_wanted = {r.kind: threading.Event() for r in RESOURCES}
        self.version_wanted = threading.Event()
        self._early: dict[str, bool] = {}  # kinds listed before the kinds of ``AFTER`` they depend on
        self._synced = False  # a list completed since the state was last written

    # -- the network side: one thread per kind, one for the version ---------------------

    def _watch_kind(self, resource: Resource) -> None:
        resource_version = ""
        forbidden_delay = 0.0
        reconnecting = False
        while not self.stop.is_set():
            try:
                if self.relist_wanted[resource.kind].is_set():
                    self.relist_wanted[resource.kind].clear()
                    resource_version = ""
                if not resource_version:
                    self._wait_for_earlier_lists(resource)
                    if self.stop.is_set():
                        return
                    resource_version = self._list(resource)
                    if self.stop.is_set():
                        return
                    self.first_list[resource.kind].set()
                for event in self.source.watch(resource, resource_version, self.stop):
                    if event.type == "OPEN":
                        self.inbox.put(("ok", resource, None))
                        self.backoff.succeeded()
                        forbidden_delay = 0.0
                        if reconnecting:
                            self.version_wanted.set()  # a new connection may be a new (upgraded) server
                        reconnecting = False
                        continue
                    if event.type == "CLOSED":
                        reconnecting = True
                        continue
                    if event.resource_version:
                        resource_version = event.resource_version
                    if event.type != "BOOKMARK":
                        self.inbox.put(("event", resource, event))
                    if self.relist_wanted[resource.kind].is_set():
                        break
            except Gone:
                log.info("%s: %s watch expired; listing again", self.source.cluster, resource.plural)
                resource_version = ""
            except Forbidden as exc:
                reconnecting = True
                if time.monotonic() - self.backoff.last_unavailable < self.timing.starting_grace:
                    starting = Starting(exc)
                    self.inbox.put(("error", resource, starting))
                    self.backoff.failed(starting)
                    self.backoff.wait(self.stop)
                    continue
                self.first_list[resource.kind].set()  # kinds listed after this one must not wait for it
                self.inbox.put(("error", resource, exc))
                forbidden_delay = (
                    min(forbidden_delay * 2, self.timing.backoff_max) if forbidden_delay else self.timing.backoff_first
                )
                wait = forbidden_delay * (0.5 + random.random() / 2)
                log.warning("%s: %s Retrying in %.1f s.", self.source.cluster, str(exc).rstrip("."), wait)
                self.stop.wait(wait)
            except SourceError as exc:
                reconnecting = True
                self.inbox.put(("error", resource, exc))
                self.backoff.failed(exc)
                self.backoff.wait(self.stop)
            except Exception as exc:  # a bug or an unexpected reply must not end the watch for good
                reconnecting = True
                log.exception("%s: watching %s failed", self.source.cluster, resource.plural)
                error = Unavailable(f"{type(exc).__name__}: {exc}")
                self.inbox.put(("error", resource, error))
                self.backoff.failed(error)
                self.backoff.wait(self.stop)

    def _wait_for_earlier_lists(self, resource: Resource) -> None:
        for kind in AFTER.get(resource.kind, ()):
            while not self.stop.is_set() and not self.first_list[kind].wait(0.1):
                pass

    def _list(self, resource: Resource) -> str:
        """Hand the writer the list of ``resource`` page by page; return its resource version.

        Each page waits until the writer has stored the one before, so at most two pages
        are held at a time, whatever the size of the cluster.
        """
        previous: threading.Event | None = None
        version = ""
        self.inbox.put(("begin", resource, None))
        for page in self.source.pages(resource):
            done = threading.Event()
            self.inbox.put(("page", resource, (page.items, done)))
            version = page.resource_version
            while previous is not None and not previous.wait(0.1):
                if self.stop.is_set():
                    return version
            previous = done
        self.inbox.put(("listed", resource, version))
        return version

    def _watch_version(self) -> None:
        """The server's version: at start, after every reconnection, and every ``version_every`` seconds."""
        while not self.stop.is_set():
            try:
                self.inbox.put(("version", None, self.source.server_version()))
            except SourceError as exc:
                self.inbox.put(("version-failed", None, exc))
            self.version_wanted.wait(self.timing.version_every)
            self.version_wanted.clear()  # (``run`` sets it to wake this thread when stopping)

    # -- the writer --------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.stop.set()
            self.version_wanted.set()
            close = getattr(self.source, "close", None)
            if close is not None:
                close()  # ends the watch streams now rather than at their timeout
            deadline = time.monotonic() + self.timing.stop_within
            for thread in self.threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
            try:
                self.store.set_state(SourceState.STOPPED, "The watcher stopped.")
            except Exception:
                log.warning("could not record the stopped state of %s", self.source.cluster, exc_info=True)
            connection.close()

    def _run(self) -> None:
        resource: Resource | None
        self.store = Store(self.source.cluster)
        self.version_known: str | None = None  # None: not asked yet
        self.version_note = ""
        self.store.set_state(
            SourceState.CONNECTING,
            f"Connecting to {self.source.description}.",
            source=self.source.description[:200],
            cluster_cidr=self.cluster_cidr,
            service_cidr=self.service_cidr,
        )
        self._start_thread(self._watch_version, "version")
        for resource in RESOURCES:
            self._start_thread(self._watch_kind, resource.plural, resource)
        pending = Affected()
        pending_since = 0.0
        full_sync_pending = True
        last_cluster_wide = 0.0
        last_state_write = 0.0
        last_connection_check = 0.0
        drained = 0
        while not self.stop.is_set():
            try:
                what, resource, payload = self.inbox.get(timeout=0.1)
            except queue.Empty:
                what, resource, payload = "", None, None
            now = time.monotonic()
            if what:
                if now - last_connection_check > self.timing.connection_check_every:
                    close_old_connections()  # a connection the database dropped is opened again
                    last_connection_check = now
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
            if not all(k.listed for k in self.kinds.values()) or self.version_known is None:
                continue  # diagnose only once every kind (and the server's version) is known
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

    def _start_thread(self, target: Callable[..., None], what: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"watch {self.source.cluster} {what}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _handle(self, what: str, resource: Resource | None, payload: Any) -> tuple[Affected, bool]:
        """Apply one message from a network thread; return what it affects and whether the state changed."""
        if what == "version":
            return self._version(str(payload)[:64])
        if what == "version-failed":
            return self._version_failed(payload)
        assert resource is not None
        kind = self.kinds[resource.kind]
        if what == "error":
            changed = kind.error is None or str(kind.error) != str(payload)
            kind.error = payload
            return Affected(), changed
        if what == "begin":
            self.store.begin_list(resource)
            return Affected(), False
        if what == "page":
            items, done = payload
            try:
                self.store.add_page(resource, items)
            finally:
                done.set()
            return Affected(), False
        recovered = kind.error is not None
        kind.error = None
        if what == "listed":
            kind.listed = True
            self._synced = True
            affected = self.store.finish_list(resource)
            # A kind listed before the kinds it depends on (their permission was missing) kept too
            # little: now that they are known, it is listed again and its objects classified again.
            self._early[resource.kind] = any(not self.kinds[k].listed for k in AFTER.get(resource.kind, ()))
            for later, earlier in AFTER.items():
                if resource.kind in earlier and self._early.get(later):
                    self._early[later] = False
                    self.relist_wanted[later].set()
            return affected, True  # a complete list is a sync: its time is shown
        if what == "event":
            assert isinstance(payload, WatchEvent)
            return self.store.apply(resource, payload), recovered
        return Affected(), recovered  # "ok": the watch is open again

    def _version(self, version: str) -> tuple[Affected, bool]:
        state = SourceState.objects.filter(cluster=self.store.cluster).first()
        before = state.server_version if state is not None else ""
        first = self.version_known is None
        self.version_known = version
        note_changed = bool(self.version_note)
        self.version_note = ""
        if version != before:
            SourceState.objects.filter(cluster=self.store.cluster).update(server_version=version)
            log.info("%s: the API server's version is %s", self.source.cluster, version)
        # Every Windows node is compared with the server's version: re-check them when it changed.
        return Affected(peers=version != before and not first), note_changed

    def _version_failed(self, error: SourceError) -> tuple[Affected, bool]:
        """Keep the last known version (checks keep comparing with it) and say so."""
        state = SourceState.objects.filter(cluster=self.store.cluster).first()
        kept = state.server_version if state is not None else ""
        if self.version_known is None:
            self.version_known = kept
        self.version_note = f"The server version could not be read ({error}); " + (
            f"showing the last known one, {kept}." if kept else "it is not known yet."
        )
        log.warning("%s: %s", self.source.cluster, self.version_note)
        return Affected(), True

    def _write_state(self) -> None:
        errors = [k.error for k in self.kinds.values() if k.error is not None]
        forbidden = [e for e in errors if isinstance(e, Forbidden)]
        if errors:
            first = (forbidden or errors)[0]
            others = len(errors) - 1
            message = str(first) + (f" ({others} other kind{'s' if others > 1 else ''} failing too.)" if others else "")
            self.store.set_state(SourceState.ERROR, message)
        elif all(k.listed for k in self.kinds.values()):
            synced = {"last_sync_at": timezone.now()} if self._synced else {}
            self._synced = False
            self.store.set_state(SourceState.CONNECTED, self.version_note, **synced)
        else:
            listed = sum(k.listed for k in self.kinds.values())
            self.store.set_state(SourceState.SYNCING, f"Listed {listed} of {len(self.kinds)} kinds.")

    def _flush(self, affected: Affected, *, full: bool = False, cluster_wide: bool = False) -> None:
        if self.diagnose:
            cluster = self.store.cluster
            try:
                if full:
                    check_all_workloads(cluster, stop=self.stop)
                    self._recheck(self.store.windows_nodes)
                else:
                    check_workloads(cluster, sorted(affected.pods))
                    self._recheck(affected.nodes)
                    if cluster_wide:
                        # Each kind of context change re-runs only the checks that read it, where they can change.
                        others = self.store.windows_nodes - affected.nodes
                        if affected.endpoints:
                            self._recheck(others, only=ENDPOINT_CHECKS, agents_only=True)
                        if affected.peers:
                            self._recheck(others, only=PEER_CHECKS)
            except Exception:  # diagnosis failing must not stop the watches; the next change retries
                log.exception("%s: diagnosis after API changes failed", self.source.cluster)
        if self.on_flush is not None:
            self.on_flush(affected)

    def _recheck(self, names: set[str], **options: Any) -> None:
        """``recheck_nodes`` in batches (a thousand nodes' snapshots at once would hold them all in memory),
        stopping between batches when the watcher stops: what is left is diagnosed at the next start."""
        ordered = sorted(names)
        for start in range(0, len(ordered), NODES_PER_BATCH):
            if self.stop.is_set():
                return
            recheck_nodes(self.store.cluster, ordered[start : start + NODES_PER_BATCH], **options)


def tune_gc() -> None:
    """Make the garbage collector fit a process that decodes lists of tens of thousands of objects.

    Decoding an API list allocates a container per JSON object, and CPython's default (a young
    collection every 700 new containers, each scanning what survived before) then costs about twice
    the decoding itself. Decoded objects are freed by reference counting, not by the collector, so
    collecting a hundred times less often costs only the few cycles that wait longer to be freed;
    what was loaded at start is moved out of the collector's sight for good.
    """
    gc.freeze()
    gc.set_threshold(70_000, 20, 20)


class Watcher:
    """Every configured cluster, each in its own thread (the watcher process: see ``tune_gc``)."""

    def __init__(self, syncs: Sequence[ClusterSync]) -> None:
        self.syncs = list(syncs)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        tune_gc()
        for sync in self.syncs:
            sync.stop = self.stop
            thread = threading.Thread(target=sync.run, name=f"cluster {sync.source.cluster}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self, timeout: float = 10.0) -> None:
        """Stop every cluster and wait for them, at most ``timeout`` seconds in all.

        The watch streams are cut here, at once, rather than when each cluster's writer
        gets to its own cleanup: a network thread blocked in a read then ends now.
        """
        self.stop.set()
        for sync in self.syncs:
            close = getattr(sync.source, "close", None)
            if close is not None:
                close()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)
