"""Longer fault runs on loopback: what is sent, stored, diagnosed and lost when things die.

Starts a real stack (its own redis-server, uvicorn, a Celery worker, Celery beat; SQLite or
--database-url) and agents that deliver through the agent's own queue and sender, one
report per node every --interval seconds. Each report carries a log line naming it, so
each one can be traced to the stored reports and the node's log tail. Scenarios:

  redis      Redis killed (SIGKILL) for --outage seconds, then started again (with or
             without its append-only file, --appendonly); a browser-like WebSocket client
             on a node page measures how long until the live stream shows a new diagnosis.
  worker     the Celery worker killed -9 in the middle of diagnoses, --kills times, started
             again after 2 s (as compose or Kubernetes would), while on-demand runs and
             bundle builds are also in flight.
  state      an agent's state wiped (node reimaged) after some reports: a new instance
             starting again at sequence 1.

For each it prints: sent, stored, diagnosed, undiagnosed, lost, log lines missing or
applied twice, duplicates answered, refused; and per scenario what else it measures.

    python bench/bench_faults.py [--scenarios redis,worker,state] [--outage 20] [--appendonly]
                                 [--sweep-every 30] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(args: argparse.Namespace, redis_port: int) -> Path:
    """Settings for this process too: the stack's database, and the Redis every scenario starts on ``redis_port``."""
    workdir = Path(tempfile.mkdtemp(prefix="wnd-bench-faults-"))
    os.environ.update(
        {
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "WND_VAR_DIR": str(workdir / "var"),
            "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
            "DJANGO_SETTINGS_MODULE": "dashboard.settings",
            "WND_LOG_LEVEL": "ERROR",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.database_url:
        call_command("flush", interactive=False, verbosity=0)
    return workdir


def duplicated_findings(node: Any) -> int:
    """Rows beyond one per (check, subject): the same reports again must not open findings again."""
    from django.db.models import Count

    from dashboard.models import Finding

    rows = Finding.objects.filter(node=node).values("check_id", "subject").annotate(n=Count("id"))
    return sum(r["n"] - 1 for r in rows)


def settle(nodes: list[Any], timeout: float) -> float | None:
    from tests.faults.harness import settled

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(settled(n) for n in nodes):
            return time.monotonic() - start
        time.sleep(0.5)
    return None


def run_agents(agents: list[Any], seconds: float, interval: float, during: Any = None) -> None:
    """Each agent queues a report every ``interval`` and sends what it can; ``during(elapsed)`` is called each tick."""
    start = time.monotonic()
    next_tick = start
    while time.monotonic() - start < seconds:
        for agent in agents:
            agent.queue_report(probes=agent.probes)
            agent.flush()
        if during is not None:
            during(time.monotonic() - start)
        next_tick += interval
        time.sleep(max(0.0, next_tick - time.monotonic()))


def drain(agents: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(a.flush() for a in agents):
        time.sleep(0.5)


def make_agents(stack: Any, count: int, prefix: str, workdir: Path, heavy: int) -> tuple[list[Any], list[Any]]:
    from dashboard.models import enroll
    from tests.faults.harness import FaultAgent, hns_endpoints

    agents, nodes = [], []
    probes = hns_endpoints(heavy) if heavy else {}
    for i in range(count):
        name = f"{prefix}-{i:02d}"
        node, token = enroll("faults", name)
        agent = FaultAgent(stack.url, token, "faults", name, workdir / "agents" / name)
        agent.probes = probes  # type: ignore[attr-defined]
        agents.append(agent)
        nodes.append(node)
    return agents, nodes


def report(title: str, nodes: list[Any], agents: list[Any]) -> None:
    from tests.faults.harness import count

    print(f"\n== {title}")
    totals: dict[str, int] = {}
    for node, agent in zip(nodes, agents, strict=True):
        for key, value in vars(count(node, [agent])).items():
            totals[key] = totals.get(key, 0) + value
    print("   " + "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items()))
    print(f"   duplicated findings {sum(duplicated_findings(n) for n in nodes)}")


def scenario_redis(args: argparse.Namespace, stack: Any, workdir: Path) -> None:
    from django.contrib.auth.models import User

    from dashboard.models import Report
    from tests.faults.harness import LiveWatcher
    from tests.integration.live import session_cookie

    agents, nodes = make_agents(stack, args.nodes, "redis", workdir, heavy=0)
    watched = nodes[0]
    watcher = LiveWatcher(
        stack.url, f"/ws/clusters/faults/nodes/{watched.name}/", session_cookie(User.objects.create_user("bench-redis"))
    )
    run_agents(agents, 5, args.interval)
    stack.kill("redis")
    killed_at = time.monotonic()
    run_agents(agents, args.outage, args.interval)
    stack.start_redis()
    back_at = time.monotonic()
    run_agents(agents, 3, args.interval)
    first_after = (
        Report.objects.filter(node=watched, received_at__gte=_wall(back_at)).order_by("pk").values_list("pk", flat=True)
    ).first()
    run_agents(agents, 20, args.interval)
    drain(agents, 60)
    took = settle(nodes, args.settle)
    shown = watcher.first_showing(first_after, back_at) if first_after else None
    diagnosed_at = (
        Report.objects.filter(pk=first_after).values_list("diagnosed_at", flat=True).first() if first_after else None
    )
    diagnosed_in = (diagnosed_at - _wall(back_at)).total_seconds() if diagnosed_at else None
    watcher.stop.set()
    report(
        f"Redis killed for {back_at - killed_at:.0f} s ({'with' if args.appendonly else 'without'} its append-only "
        f"file), {args.nodes} nodes, a report each every {args.interval:g} s",
        nodes,
        agents,
    )
    print(f"   settled {settled_text(took, args.settle)} after the run")
    print(
        "   live stream back: "
        + (f"{shown - back_at:.1f} s after Redis restarted" if shown else "no frame of a new diagnosis seen")
        + f" (its report diagnosed {diagnosed_in if diagnosed_in is None else round(diagnosed_in, 1)} s after;"
        + f" browser reconnects: {watcher.reconnects}); process restarts: {stack.restarts or 'none'}"
    )


def settled_text(took: float | None, limit: float) -> str:
    return f"in {took:.1f} s" if took is not None else f"NOT within {limit:.0f} s"


def _wall(monotonic_at: float) -> Any:
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=time.monotonic() - monotonic_at)


def scenario_worker(args: argparse.Namespace, stack: Any, workdir: Path) -> None:
    from dashboard import tasks
    from dashboard.models import Bundle, DiagnosisRun, Report

    agents, nodes = make_agents(stack, args.nodes, "worker", workdir, heavy=400)
    kills: list[tuple[int, int]] = []  # (in flight when killed, runs+bundles unfinished)
    every = args.worker_seconds / (args.kills + 1)

    def during(elapsed: float) -> None:
        if len(kills) < args.kills and elapsed >= every * (len(kills) + 1):
            run = DiagnosisRun.objects.create(node=nodes[len(kills) % len(nodes)], trigger=DiagnosisRun.TRIGGER_MANUAL)
            tasks.run_now.delay(run.pk)
            bundle = Bundle.objects.create()
            bundle.nodes.set(nodes)
            tasks.build_bundle.delay(bundle.pk)
            # Kill while something is in the worker's hands: the bundle building, or else reports
            # owed (queued or being checked); give up waiting after 5 s and kill anyway.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                owed = Report.objects.filter(node__in=nodes, diagnosed_at__isnull=True).count()
                building = Bundle.objects.filter(pk=bundle.pk, state=Bundle.RUNNING).exists()
                if building or (owed and time.monotonic() > deadline - 4.0):
                    break
                time.sleep(0.005)
            busy = (
                DiagnosisRun.objects.filter(finished_at__isnull=True).count()
                + Bundle.objects.filter(state__in=[Bundle.PENDING, Bundle.RUNNING]).count()
            )
            stack.kill("worker")
            kills.append((owed, busy))
            time.sleep(2.0)
            stack.start_worker()

    run_agents(agents, args.worker_seconds, args.interval, during)
    drain(agents, 60)
    took = settle(nodes, args.settle)
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline and (
        DiagnosisRun.objects.filter(finished_at__isnull=True).exists()
        or Bundle.objects.filter(state__in=[Bundle.PENDING, Bundle.RUNNING]).exists()
    ):
        time.sleep(1)
    report(
        f"worker killed -9 {len(kills)} times mid-task, {args.nodes} nodes, heavy reports every {args.interval:g} s",
        nodes,
        agents,
    )
    print(f"   in flight at each kill (reports owed, runs+bundles unfinished): {kills}")
    print(f"   settled {settled_text(took, args.settle)} after the run")
    runs = DiagnosisRun.objects.all()
    bundles = Bundle.objects.all()
    print(
        f"   runs: {runs.count()} total, {runs.filter(finished_at__isnull=True).count()} stuck, "
        f"{runs.exclude(error='').count()} failed by their lease; bundles: {bundles.count()} total, "
        f"{bundles.filter(state=Bundle.DONE).count()} ready, {bundles.filter(state=Bundle.FAILED).count()} failed, "
        f"{bundles.filter(state__in=[Bundle.PENDING, Bundle.RUNNING]).count()} stuck"
    )


def scenario_state(args: argparse.Namespace, stack: Any, workdir: Path) -> None:
    agents, nodes = make_agents(stack, 1, "state", workdir, heavy=0)
    agent = agents[0]
    run_agents(agents, 10, args.interval)
    drain(agents, 30)
    old_markers = list(agent.markers)
    agent.wipe_state()
    run_agents(agents, 10, args.interval)
    drain(agents, 30)
    settle(nodes, args.settle)
    report(f"agent state wiped after {len(old_markers)} reports, then {agent.sequence} more", nodes, agents)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="redis,worker,state")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between reports of a node")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds Redis stays down")
    parser.add_argument("--appendonly", action="store_true", help="Redis with its append-only file")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--worker-seconds", type=float, default=40.0)
    parser.add_argument("--sweep-every", type=int, default=30, help="seconds between maintenance tasks (30 deployed)")
    parser.add_argument("--settle", type=float, default=180.0, help="seconds to wait for every diagnosis after a run")
    parser.add_argument("--database-url", help="a throwaway database, emptied first; default: SQLite")
    args = parser.parse_args()
    from dashboard.server.embedded import free_port

    redis_port = free_port()
    workdir = setup_django(args, redis_port)
    from tests.faults.harness import FaultStack

    for name in args.scenarios.split(","):
        stack = FaultStack(
            database_url=os.environ["DATABASE_URL"],
            workdir=workdir / name,
            appendonly=args.appendonly,
            sweep_every=args.sweep_every,
            redis_port=redis_port,
            # Deployed values, except the lease: a bundle of a few nodes makes progress every second.
            env_extra={"WND_REQUEUE_AFTER": "600", "WND_LEASE_SECONDS": "30", "WND_BUNDLE_LOGS_WAIT": "0"},
        )
        stack.workdir.mkdir(parents=True, exist_ok=True)
        stack.start()
        try:
            {"redis": scenario_redis, "worker": scenario_worker, "state": scenario_state}[name](args, stack, workdir)
        finally:
            stack.stop()
    print(f"\nlogs: {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
