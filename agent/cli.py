"""Command line: ``python -m agent --config FILE`` or ``python -m agent --scenario FILE --dashboard URL --token T``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path

from agent.app import Agent
from agent.config import AgentConfig, ConfigError, load_config
from agent.runner import PowerShellRunner, ProbeRunner
from agent.scenario import ScenarioError, ScenarioRunner, load_scenario

log = logging.getLogger("agent")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent", description="Windows Node Doctor agent")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="TOML or JSON configuration file")
    src.add_argument("--scenario", help="replay this scenario file instead of running PowerShell")
    p.add_argument("--dashboard", help="dashboard base URL, e.g. https://doctor.example.com")
    p.add_argument("--token", help="agent token (prefer --token-file)")
    p.add_argument("--token-file", help="file holding the agent token")
    p.add_argument("--cluster")
    p.add_argument("--node")
    p.add_argument("--interval", type=float, help="seconds between collections")
    p.add_argument("--state-dir", help="queue, sequence and log offsets")
    p.add_argument("--ca-bundle", help="PEM bundle to verify the dashboard's certificate")
    p.add_argument("--once", action="store_true", help="collect and send once, then exit (1 if reports stay queued)")
    p.add_argument("--no-websocket", action="store_true", help="do not open the on-demand request channel")
    p.add_argument("--log-level", default="INFO")
    return p


def make_config(args: argparse.Namespace) -> AgentConfig:
    cfg = load_config(args.config) if args.config else AgentConfig()
    if args.scenario:
        cfg.scenario = args.scenario
        doc = load_scenario(args.scenario)
        cfg.cluster = args.cluster or cfg.cluster or str(doc["cluster"])
        cfg.node = args.node or cfg.node or str(doc["node"])
        if not args.state_dir:
            cfg.state_dir = str(Path(tempfile.gettempdir()) / "windows-node-doctor" / f"{cfg.cluster}-{cfg.node}")
    for name in ("dashboard", "token", "token_file", "cluster", "node", "interval", "state_dir", "ca_bundle"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.no_websocket:
        cfg.websocket = False
    cfg.validate()
    return cfg


def make_runner(cfg: AgentConfig) -> ProbeRunner:
    if cfg.scenario:
        return ScenarioRunner(cfg.scenario, Path(cfg.state_dir) / "replay")
    return PowerShellRunner(cfg.powershell, cfg.hns_module)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = make_config(args)
        runner = make_runner(cfg)
        agent = Agent(cfg, runner)
    except (ConfigError, ScenarioError) as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 2
    if args.once:
        result = agent.cycle()
        return 0 if result.pending == 0 else 1

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    channel = start_channel(agent, cfg, stop) if cfg.websocket else None
    log.info("agent for %s/%s reporting to %s every %gs", cfg.cluster, cfg.resolved_node(), cfg.dashboard, cfg.interval)
    agent.run(stop)
    if channel is not None:
        channel.join(timeout=5)
    return 0


def start_channel(agent: Agent, cfg: AgentConfig, stop: threading.Event) -> threading.Thread | None:
    """The on-demand request channel, in its own thread (``agent.channel``); optional."""
    try:
        from agent.channel import run_channel_thread
    except ImportError as exc:  # websockets not installed: reports still flow
        log.warning("on-demand requests disabled: %s", exc)
        return None
    return run_channel_thread(agent, cfg, stop)
