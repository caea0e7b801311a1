"""``manage.py watch_cluster``: keep the dashboard's copy of every configured cluster current.

One process watches all clusters (``WND_CLUSTERS`` / ``WND_CLUSTERS_FILE``), or,
with ``--simulated``, the demo's recorded clusters. Stops on Ctrl-C or SIGTERM.
With ``WND_WATCHER_LEASE`` several replicas run and the holder of the Lease watches
(``dashboard.cluster.leader``); one that loses the Lease exits with status 3.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.cluster import leader
from dashboard.cluster.config import ConfigError, configured
from dashboard.cluster.simulated import SimulatedSource, recorded_clusters
from dashboard.cluster.source import ClusterSource
from dashboard.cluster.sync import ClusterSync, Watcher
from dashboard.server import heartbeat


class Command(BaseCommand):
    help = "Watch the configured Kubernetes clusters (nodes, pods, events, services, endpoint slices)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--simulated", action="store_true", help="watch the demo's recorded clusters instead")
        parser.add_argument(
            "--tick", type=float, default=0.0, help="with --simulated: seconds between simulated changes (0: none)"
        )
        parser.add_argument("--cluster", action="append", default=[], help="only these clusters (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        syncs = self.syncs(options["simulated"], set(options["cluster"]))
        if not syncs:
            raise CommandError(
                "no cluster to watch: set WND_CLUSTERS (e.g. prod-eu=context:aks-prod-eu or local=in-cluster) "
                "or WND_CLUSTERS_FILE, or use --simulated"
            )
        watcher = Watcher(syncs)
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        names = ", ".join(f"{s.source.cluster} ({s.source.description})" for s in syncs)
        election = None if options["simulated"] else self.election()
        leading, lost = threading.Event(), threading.Event()
        if election is None:
            watcher.start()
            leading.set()
            self.stdout.write(f"Watching {names}.")
        else:
            source = syncs[0].source

            def lead() -> None:
                watcher.start()
                leading.set()
                self.stdout.write(f"Leading (Lease {election.namespace}/{election.name}): watching {names}.")
                self.stdout.flush()

            leader.campaign(source, election, lead, lost.set)
            self.stdout.write(f"Waiting for the Lease {election.namespace}/{election.name} ({leader.identity()}).")
            self.stdout.flush()
        tick = options["tick"]
        next_tick = time.monotonic() + tick
        try:
            while not stopping.is_set() and not lost.is_set() and (watcher.alive() or not leading.is_set()):
                stopping.wait(0.2)
                heartbeat.beat("watcher")  # the liveness probe: python -m dashboard.server.heartbeat watcher
                if tick and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + tick
                    for sync in syncs:
                        if isinstance(sync.source, SimulatedSource):
                            sync.source.tick()
        except KeyboardInterrupt:
            pass
        finally:
            watcher.close(timeout=2.0)  # each cluster stops within about a second: streams are cut
            if election is not None and leading.is_set() and not lost.is_set():
                leader.release(syncs[0].source, election)  # a waiting replica takes over at once
        if lost.is_set() and not stopping.is_set():
            # Another replica may be watching already: exit, to start again as a follower.
            raise CommandError("lost the Lease; stopped watching", returncode=3)
        self.stdout.write("Stopped watching.")

    def election(self) -> leader.Election | None:
        from django.conf import settings

        try:
            return leader.Election.parse(settings.WND_WATCHER_LEASE, settings.WND_WATCHER_LEASE_SECONDS)
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    def syncs(self, simulated: bool, only: set[str]) -> list[ClusterSync]:
        sources: list[ClusterSource] = []
        if simulated:
            sources = [SimulatedSource.recorded(name) for name in recorded_clusters() if not only or name in only]
            return [ClusterSync(source) for source in sources]
        try:
            configs = [c for c in configured() if not only or c.name in only]
            return [ClusterSync(c.source(), cluster_cidr=c.cluster_cidr, service_cidr=c.service_cidr) for c in configs]
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
