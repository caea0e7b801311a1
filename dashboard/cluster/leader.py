"""Watcher failover: of several ``watch_cluster`` replicas, the one holding a Lease watches.

``WND_WATCHER_LEASE`` (``namespace/name``) turns it on. Every replica runs the
``kubernetes`` client's leader election on that Lease (in the first configured
cluster, with that cluster's credentials: usually the cluster the dashboard runs
in). The holder renews it every few seconds; when it stops (killed, node lost,
API unreachable), another replica takes the Lease once it has not been renewed for
``WND_WATCHER_LEASE_SECONDS`` and starts watching; a holder stopped by SIGTERM gives
the Lease up first (``release``), so that the next one need not wait for that. A replica
that loses the Lease stops watching and exits, to start again as a follower, as client-go's
users do.
The Role in ``deploy/kubernetes/base/dashboard/rbac.yaml`` allows get, create and update on leases
in the dashboard's namespace.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Election:
    namespace: str
    name: str
    lease_seconds: int = 15

    @property
    def renew_seconds(self) -> int:
        """How long the holder keeps trying to renew before it gives up (less than the lease)."""
        return max(2, self.lease_seconds * 2 // 3)

    @property
    def retry_seconds(self) -> int:
        return max(1, self.lease_seconds // 5)

    @classmethod
    def parse(cls, value: str, lease_seconds: int = 15) -> Election | None:
        """``namespace/name``; empty: no election (one replica)."""
        if not value:
            return None
        namespace, _, name = value.partition("/")
        if not namespace or not name:
            raise ValueError(f"WND_WATCHER_LEASE={value!r}: expected namespace/name, e.g. windows-node-doctor/watcher")
        return cls(namespace, name, max(3, lease_seconds))


class _Leases:
    """The Lease API of a source's current client (a client made again after a 401 is used too)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def __getattr__(self, name: str) -> Any:
        return getattr(client.CoordinationV1Api(self.source.api), name)


def identity() -> str:
    """This replica's name in the Lease: the pod's name (its host name) and the process."""
    return f"{socket.gethostname()}-{os.getpid()}"


def campaign(source: Any, election: Election, lead: Callable[[], None], lost: Callable[[], None]) -> threading.Thread:
    """Run for the Lease in a daemon thread: ``lead`` once it is won, ``lost`` if it is lost after that."""
    lock = LeaseLock(election.name, election.namespace, identity())
    lock.api_instance = _Leases(source)  # type: ignore[assignment]
    config = electionconfig.Config(
        lock=lock,
        lease_duration=election.lease_seconds,
        renew_deadline=election.renew_seconds,
        retry_period=election.retry_seconds,
        onstarted_leading=lead,
        onstopped_leading=lost,
    )
    thread = threading.Thread(target=leaderelection.LeaderElection(config).run, name="leader election", daemon=True)
    thread.start()
    return thread


def release(source: Any, election: Election) -> None:
    """Give the Lease up as this replica stops while holding it.

    The holder is cleared (as client-go's ``ReleaseOnCancel`` does), so that a waiting replica
    takes the Lease at its next try instead of after the lease has run out. Best effort: a
    replica that cannot reach the API leaves the Lease to expire.
    """
    api = client.CoordinationV1Api(source.api)
    try:
        lease = api.read_namespaced_lease(election.name, election.namespace, _request_timeout=5)
        if lease.spec is None or lease.spec.holder_identity != identity():
            return  # another replica holds it already
        lease.spec.holder_identity = None
        lease.spec.lease_duration_seconds = 1
        api.replace_namespaced_lease(election.name, election.namespace, lease, _request_timeout=5)
    except Exception as exc:  # the resource version moved on, or the API is gone: the Lease expires instead
        log.info("could not give up the Lease %s/%s: %s", election.namespace, election.name, exc)
        return
    log.info("gave up the Lease %s/%s", election.namespace, election.name)
