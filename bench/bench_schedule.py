"""Benchmark of one scheduled run over a simulated fleet: wall time and database queries per node.

Builds a fresh SQLite database in a temporary folder, enrolls N nodes (default 1,000) whose
latest reports are real ``node-report/v1`` documents collected from the demo scenarios
(each node replays one scenario: a different fault, or none), with their log tails, then
runs the default schedule ("every Windows node, all checks") twice: the first run opens
the findings, the second finds them still there (the steady state). For each run it
prints the wall time, the queries in total and per node, and what changed.

    python bench/bench_schedule.py [--nodes 1000] [--also 250]

Target: at most 30 s for 1,000 nodes on 2 cores, and the same number of queries per
node whatever the fleet's size (``--also`` runs a smaller fleet to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def scenario_reports(work: Path) -> list[dict[str, Any]]:
    """One report per demo scenario, collected by the agent's own collector."""
    from agent.collect import Collector
    from agent.config import AgentConfig
    from agent.scenario import ScenarioRunner
    from agent.state import AgentState

    reports = []
    for scenario in sorted((ROOT / "agent" / "scenarios").glob("*/scenario.json")):
        state_dir = work / "agents" / scenario.parent.name
        config = AgentConfig(scenario=str(scenario), state_dir=str(state_dir))
        runner = ScenarioRunner(scenario, state_dir / "replay")
        collector = Collector(config, runner, AgentState.load(state_dir / "state.json"))
        reports.append(collector.collect().report)
    return reports


def build_fleet(count: int, reports: list[dict[str, Any]]) -> None:
    """N nodes of cluster "bench", each with one stored report and its log tails."""
    from django.utils import timezone

    from dashboard.models import Cluster, Finding, LogTail, Node, Report

    Finding.objects.all().delete()
    Node.objects.all().delete()
    cluster, _ = Cluster.objects.get_or_create(name="bench")
    now = timezone.now()
    nodes = Node.objects.bulk_create(
        Node(cluster=cluster, name=f"win-{i:04}", last_report_at=now) for i in range(count)
    )
    rows, tails = [], []
    for i, node in enumerate(nodes):
        doc = {**reports[i % len(reports)], "cluster": "bench", "node": node.name, "sequence": 1}
        data = json.dumps(doc).encode()
        rows.append(
            Report(node=node, received_at=now, collected_at=now, size_bytes=len(data), payload=Report.pack(data))
        )
        for kind, log in (doc.get("logs") or {}).items():
            tails.append(LogTail(node=node, kind=kind, path=log["path"], text=log["text"], updated_at=now))
    Report.objects.bulk_create(rows, batch_size=200)
    LogTail.objects.bulk_create(tails, batch_size=500)


def timed_run(label: str, count: int) -> tuple[float, int]:
    from django.db import connection

    from dashboard import schedules
    from dashboard.monitoring import Schedule

    schedule = Schedule.objects.get(name=schedules.DEFAULT_NAME)
    calls = [0]

    def counting(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        calls[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counting):
        started = time.perf_counter()
        run = schedules.run_schedule(schedule.pk)
        wall = time.perf_counter() - started
    assert run is not None
    queries = calls[0]
    print(
        f"{label:<22} {count:>6} nodes  {wall:7.2f} s wall  {1000 * wall / count:6.1f} ms/node  "
        f"{queries:>6} queries  {queries / count:5.2f} per node  "
        f"opened {run.findings_opened:>5}  resolved {run.findings_resolved:>4}  [{run.state}: {run.message}]"
    )
    return wall, queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--also", type=int, default=250, help="a smaller fleet to compare queries per node (0: none)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="wnd-bench-schedule-"))
    os.environ["WND_VAR_DIR"] = str(work)
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ["WND_LOG_LEVEL"] = "ERROR"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    supervisor = None
    if "REDIS_URL" not in os.environ:  # agent presence and live events need a Redis
        from dashboard.server.embedded import Supervisor, free_port

        supervisor = Supervisor()
        os.environ["REDIS_URL"] = supervisor.start_redis(free_port(), work / "redis")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        reports = scenario_reports(work)
        print(f"{len(reports)} scenario reports, {sum(len(json.dumps(r)) for r in reports) // len(reports)} bytes each")
        results = {}
        for count in [c for c in (args.also, args.nodes) if c]:
            build_fleet(count, reports)
            first = timed_run("first run (opens)", count)
            steady = timed_run("second run (persists)", count)
            results[count] = (first, steady)
        if args.also and args.nodes in results:
            small, large = results[args.also][1][1] / args.also, results[args.nodes][1][1] / args.nodes
            print(f"queries per node, steady state: {small:.2f} at {args.also} nodes, {large:.2f} at {args.nodes}")
        wall = max(results[args.nodes][0][0], results[args.nodes][1][0])
        print(f"slowest run over {args.nodes} nodes: {wall:.1f} s (target 30 s): {'ok' if wall <= 30 else 'SLOW'}")
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
