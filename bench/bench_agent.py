"""CPU time and peak RSS of one agent collection cycle in scenario mode.

    python bench/bench_agent.py [--cycles 20] [--scenario agent/scenarios/healthy/scenario.json]

Targets: <= 1 s CPU and <= 50 MB RSS per cycle. Reports are queued to a
temporary directory and not sent (the network is not what is measured).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.app import Agent
from agent.config import AgentConfig
from agent.scenario import ScenarioRunner

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--scenario", default=str(ROOT / "agent/scenarios/overlay-ws2019-hotfix-missing/scenario.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = AgentConfig(dashboard="http://127.0.0.1:9", state_dir=tmp)
        agent = Agent(cfg, ScenarioRunner(args.scenario, Path(tmp) / "replay"))
        cpu: list[float] = []
        wall: list[float] = []
        sizes: list[int] = []
        for _ in range(args.cycles):
            c0, w0 = time.process_time(), time.perf_counter()
            collection = agent.collect_and_queue()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            sizes.append(agent.queue.items()[-1].stat().st_size)
            del collection
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first, rest = cpu[0], sorted(cpu[1:]) or [cpu[0]]
    print(f"scenario: {Path(args.scenario).parent.name}, {args.cycles} cycles")
    print(
        f"CPU per cycle: first {first * 1000:.1f} ms, median {rest[len(rest) // 2] * 1000:.1f} ms, "
        f"max {max(cpu) * 1000:.1f} ms"
    )
    print(f"wall per cycle: median {sorted(wall)[len(wall) // 2] * 1000:.1f} ms")
    print(f"report size (gzip): first {sizes[0] / 1024:.1f} KiB, later {sizes[-1] / 1024:.1f} KiB")
    print(f"peak RSS of the process: {rss_mb:.1f} MB")
    ok = max(cpu) <= 1.0 and rss_mb <= 50
    print("targets (<= 1 s CPU, <= 50 MB RSS):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
