"""CPU time and peak RSS of one agent collection cycle in scenario mode; PowerShell processes per
cycle; report sizes of nodes with 500 and 5,000 HNS endpoints.

    python bench/bench_agent.py [--cycles 20] [--scenario agent/scenarios/healthy/scenario.json]

Targets: <= 1 s CPU and <= 50 MB RSS per cycle; 1 PowerShell process per cycle. Reports are
queued to a temporary directory and not sent (the network is not what is measured).

No PowerShell runs here: the process count is measured with the real ``PowerShellRunner``
starting a stand-in program (``python`` writing the recorded document of the large node) in
place of powershell.exe, so what is counted is the runner's own starts. The script's run time
on a real node cannot be measured on this machine.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gzip
import json
import stat

from agent.app import Agent
from agent.collect import Collector
from agent.config import AgentConfig
from agent.runner import PowerShellRunner
from agent.scenario import ScenarioRunner
from agent.scenarios.presets.build import document, large_outputs
from agent.state import AgentState
from diagnostics.probes import PROBES

ROOT = Path(__file__).resolve().parents[1]


# Stands in for powershell.exe: writes the recorded document to the -Out file, counts its starts.
_STAND_IN = """#!{python}
import sys, pathlib
argv = sys.argv[1:]
out = argv[argv.index("-Out") + 1]
with open({counter!r}, "a") as fh:
    fh.write("1")
pathlib.Path(out).write_bytes(pathlib.Path({document!r}).read_bytes())
"""


def powershell_processes(cycles: int) -> tuple[float, float]:
    """(PowerShell processes started per cycle, wall ms per cycle) with the stand-in."""
    with tempfile.TemporaryDirectory() as tmp:
        doc = ROOT / "agent/scenarios/presets/large-node/probes.json"
        counter = Path(tmp) / "starts"
        stand_in = Path(tmp) / "powershell"
        stand_in.write_text(_STAND_IN.format(python=sys.executable, counter=str(counter), document=str(doc)))
        stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
        cfg = AgentConfig(dashboard="http://127.0.0.1:9", state_dir=tmp, slow_interval=0)
        runner = PowerShellRunner(powershell=str(stand_in))
        collector = Collector(cfg, runner, AgentState(Path(tmp) / "state.json"))
        started = time.perf_counter()
        for _ in range(cycles):
            collector.collect()
        wall = (time.perf_counter() - started) / cycles * 1000
        return len(counter.read_text()) / cycles, wall


def report_size(endpoints: int, load_balancers: int) -> tuple[int, int, float]:
    """(bytes, gzip bytes, agent CPU ms) of the first report of a node with that many HNS objects."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "probes.json").write_text(document(large_outputs(endpoints, load_balancers)), encoding="utf-8")
        scenario = {"format": "node-scenario/v1", "cluster": "bench", "node": "win-bench", "document": "probes.json"}
        Path(tmp, "scenario.json").write_text(json.dumps(scenario), encoding="utf-8")
        cfg = AgentConfig(dashboard="http://127.0.0.1:9", state_dir=tmp)
        collector = Collector(
            cfg, ScenarioRunner(Path(tmp) / "scenario.json", Path(tmp) / "r"), AgentState(Path(tmp) / "s")
        )
        c0 = time.process_time()
        report = collector.collect().report
        cpu = (time.process_time() - c0) * 1000
        body = json.dumps(report, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return len(body), len(gzip.compress(body, 6)), cpu


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
    per_cycle, ps_wall = powershell_processes(5)
    print(f"PowerShell processes per cycle: {per_cycle:g} (all {len(PROBES)} probes due every cycle)")
    print(f"  agent wall per cycle around them, large node document: {ps_wall:.0f} ms")
    for endpoints, lbs in ((500, 250), (5000, 2000)):
        raw, packed, cpu_ms = report_size(endpoints, lbs)
        print(
            f"report with {endpoints} endpoints and {lbs} load balancers: {raw / 1024:.0f} KiB, "
            f"gzip {packed / 1024:.0f} KiB; agent CPU {cpu_ms:.0f} ms"
        )
    ok = max(cpu) <= 1.0 and rss_mb <= 50 and per_cycle == 1
    print("targets (<= 1 s CPU, <= 50 MB RSS, 1 PowerShell process per cycle):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
