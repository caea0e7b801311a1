"""``manage.py demo``: the whole product on embedded defaults, with a simulated fleet.

Starts Redis (unless ``REDIS_URL`` is set), the ASGI web server, one Celery
worker with beat, the cluster watcher (the clusters of ``WND_CLUSTERS`` or
``WND_CLUSTERS_FILE``; the simulated clusters when neither is set), and one
agent in scenario mode per scenario under ``agent/scenarios/``; prints the URL
and the logins; Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from dashboard.access.roles import OPERATOR_GROUP, VIEWER_GROUP
from dashboard.models import AgentToken, enroll
from dashboard.server.embedded import Supervisor, free_port, python, wait_for_http, web_command, worker_command

SCENARIOS = Path(settings.BASE_DIR) / "agent" / "scenarios"
LOGINS = (("operator", "operator-demo", OPERATOR_GROUP), ("viewer", "viewer-demo", VIEWER_GROUP))


def demo_scenarios() -> list[tuple[Path, str, str]]:
    """(scenario file, cluster, node) for every recorded scenario of the demo fleet."""
    found = []
    for path in sorted(SCENARIOS.glob("*/scenario.json")):
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("demo", True):
            found.append((path, str(data["cluster"]), str(data["node"])))
    return found


def watcher_command() -> list[str]:
    """The configured clusters (``WND_CLUSTERS`` / ``WND_CLUSTERS_FILE``), or the simulated ones when none is."""
    command = [python(), str(Path(settings.BASE_DIR) / "manage.py"), "watch_cluster"]
    if settings.WND_CLUSTERS or settings.WND_CLUSTERS_FILE:
        return command
    # The simulated fleet's clusters, behind the same seam as a real API server.
    return [*command, "--simulated", "--tick", "20"]


def port_free(port: int) -> bool:
    """Whether the web server could listen on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: connections closing are no obstacle
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop_on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the dashboard on embedded defaults with a simulated fleet of Windows nodes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("WND_PORT", "8000")))
        parser.add_argument("--interval", type=float, default=15.0, help="seconds between agent reports")
        parser.add_argument("--no-agents", action="store_true", help="do not start the simulated fleet")

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"]
        supervisor = Supervisor()
        # Ctrl-C, a closed terminal and `kill` all stop everything this command started
        # (SIGINT is installed explicitly: a shell starting us in the background ignores it).
        previous = {sig: signal.signal(sig, stop_on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            env = self.start_services(supervisor, port)
            if not options["no_agents"]:
                self.start_agents(supervisor, env, port, options["interval"])
            self.stdout.write(self.style.SUCCESS(f"\nWindows Node Doctor is running at http://127.0.0.1:{port}/"))
            for name, password, _group in LOGINS:
                self.stdout.write(f"  sign in as {name} / {password}")
            self.stdout.write("Press Ctrl-C to stop everything.\n")
            while not (dead := supervisor.dead()):
                time.sleep(0.5)
            name, code = dead[0]
            raise CommandError(f"{name} stopped unexpectedly (exit {code}); stopping the rest", returncode=1)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            supervisor.stop()
            for sig, handler in previous.items():  # as they were (the command may run inside another program)
                signal.signal(sig, handler)
            self.stdout.write("Stopped.")

    def start_services(self, supervisor: Supervisor, port: int) -> dict[str, str]:
        if not port_free(port):
            raise CommandError(f"port {port} is already in use: choose another with --port N (or WND_PORT=N)")
        env = dict(os.environ)
        # Links in notifications point at this demo, whatever its port.
        env.setdefault("WND_PUBLIC_URL", f"http://127.0.0.1:{port}")
        if "REDIS_URL" not in env:
            env["REDIS_URL"] = supervisor.start_redis(free_port(), Path(settings.VAR_DIR) / "redis")
        call_command("migrate", verbosity=0)
        self.create_logins()
        supervisor.start("web", web_command(port), env=env)
        beat_schedule = Path(settings.VAR_DIR) / "celerybeat-schedule"
        supervisor.start("worker", worker_command(concurrency=2, beat_schedule=beat_schedule), env=env)
        supervisor.start("watcher", watcher_command(), env=env)
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        return env

    def create_logins(self) -> None:
        for name, password, group in LOGINS:
            user, _ = User.objects.get_or_create(username=name)
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name=group))

    def start_agents(self, supervisor: Supervisor, env: dict[str, str], port: int, interval: float) -> None:
        scenarios = demo_scenarios()
        if not scenarios:
            raise CommandError(f"no scenario found under {SCENARIOS}")
        spool = Path(settings.VAR_DIR) / "agents"
        for path, cluster, node in scenarios:
            # A fresh token each run; the previous demo tokens of the node are revoked.
            AgentToken.objects.filter(node__cluster__name=cluster, node__name=node, revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
            _node, token = enroll(cluster, node, label="demo")
            supervisor.start(
                f"agent {cluster}/{node}",
                [
                    python(),
                    "-m",
                    "agent",
                    "--scenario",
                    str(path),
                    "--dashboard",
                    f"http://127.0.0.1:{port}",
                    "--token",
                    token,
                    "--interval",
                    str(interval),
                    "--state-dir",
                    str(spool / f"{cluster}-{node}"),
                    "--log-level",
                    "WARNING",
                ],
                env=env,
            )
        self.stdout.write(f"Started {len(scenarios)} simulated Windows nodes.")
