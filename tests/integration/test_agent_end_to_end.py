"""A real agent in scenario mode against the real stack, over loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dashboard import agents
from dashboard.diagnosis import ask_for_fresh_report
from dashboard.models import Finding, Node, Report, enroll
from dashboard.server.embedded import python
from tests.stack import Stack

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).resolve().parents[2] / "agent" / "scenarios"


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    """A private copy of the subnet-env-missing scenario (tests may rewrite it)."""
    shutil.copytree(SCENARIOS / "subnet-env-missing", tmp_path / "scenario")
    return tmp_path / "scenario" / "scenario.json"


@pytest.fixture
def run_agent(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(scenario: Path, url: str, token: str, *extra: str) -> subprocess.Popen[bytes]:
        argv = [python(), "-m", "agent", "--scenario", str(scenario), "--dashboard", url, "--token", token]
        argv += ["--interval", "1", "--state-dir", str(tmp_path / "state"), "--log-level", "WARNING", *extra]
        started.append(subprocess.Popen(argv))
        return started[-1]

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def test_reports_queued_during_an_outage_arrive_once_and_in_order(
    stack: Stack, scenario: Path, run_agent: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    doc = json.loads(scenario.read_text())
    node, token = enroll(doc["cluster"], doc["node"])
    run_agent(scenario, stack.url, token, "--no-websocket")

    open_finding = Finding.objects.filter(node=node, check_id="flannel.subnet-env-missing", resolved_at__isnull=True)
    wait_until(open_finding.exists, what="the scenario's fault to be diagnosed")

    stack.stop_web()
    before = Report.objects.filter(node=node).count()
    queue = tmp_path / "state"
    time.sleep(5)  # the agent keeps collecting into its on-disk queue
    assert Report.objects.filter(node=node).count() == before
    stack.start_web()

    def drained() -> bool:
        return not [p for p in queue.rglob("*.json.gz") if "queue" in p.parts]

    wait_until(drained, what="the agent's queue to drain")
    time.sleep(1)
    sequences = list(Report.objects.filter(node=node).order_by("id").values_list("sequence", flat=True))
    assert len(sequences) >= before + 4
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), sequences


def test_a_fixed_fault_resolves_and_a_connectivity_test_streams_back(
    stack: Stack, scenario: Path, run_agent: Callable[..., subprocess.Popen[bytes]]
) -> None:
    doc = json.loads(scenario.read_text())
    node, token = enroll(doc["cluster"], doc["node"])
    run_agent(scenario, stack.url, token)
    findings = Finding.objects.filter(node=node, check_id="flannel.subnet-env-missing")
    wait_until(lambda: findings.filter(resolved_at__isnull=True).exists(), what="the fault")

    scenario.write_text(json.dumps({**doc, "variant": "fixed"}))
    wait_until(lambda: findings.filter(resolved_at__isnull=False).exists(), what="the fix to resolve it")
    assert Node.objects.get(pk=node.pk).critical_count == 0 or not findings.filter(resolved_at__isnull=True).exists()

    wait_until(lambda: agents.is_online(node.pk), what="the agent's request channel")
    node = Node.objects.select_related("cluster").get(pk=node.pk)
    record = agents.send_request(node, "ping-vs-curl", {"target": "8.8.8.8"})

    def answered() -> bool:
        return any(r["id"] == record["id"] and r["state"] == "done" for r in agents.history(node.pk))

    wait_until(answered, what="the agent's answer")
    done = next(r for r in agents.history(node.pk) if r["id"] == record["id"])
    assert {r["kind"] for r in done["results"]} == {"ping", "curl"}

    # "Run diagnostics now" first asks the connected agent for a fresh report.
    assert ask_for_fresh_report(node) is True
