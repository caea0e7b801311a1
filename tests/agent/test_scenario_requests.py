"""Scenario mode answers the tests from the node the way that node would."""

from __future__ import annotations

from pathlib import Path

from agent.requests import resolve_command
from agent.scenario import ScenarioRunner

SCENARIOS = Path(__file__).resolve().parents[2] / "agent" / "scenarios"
RESOLVE = resolve_command("powershell.exe", "kubernetes.default.svc.cluster.local.")
CURL = ["curl.exe", "-sS", "-o", "NUL", "-m", "5", "-w", "HTTP %{http_code} in %{time_total}s"]


def runner(name: str, tmp_path: Path) -> ScenarioRunner:
    return ScenarioRunner(SCENARIOS / name / "scenario.json", tmp_path)


def test_a_node_without_an_hns_network_fails_service_and_dns_tests(tmp_path: Path) -> None:
    node = runner("cbr0-network-missing", tmp_path)
    assert node.run_command([*CURL, "http://10.96.0.1:443/"], 5).error is not None
    assert node.run_command(["nslookup.exe", "kubernetes.default.svc.cluster.local."], 5).error is not None
    assert node.run_command(RESOLVE, 5).error is not None
    assert node.run_command([*CURL, "http://www.microsoft.com:80/"], 5).error is None  # the node's own network works


def test_a_healthy_node_reaches_services_and_resolves_names(tmp_path: Path) -> None:
    node = runner("healthy", tmp_path)
    assert node.run_command([*CURL, "http://10.96.0.1:443/"], 5).error is None
    assert node.run_command(["nslookup.exe", "kubernetes.default.svc.cluster.local."], 5).error is None
    answer = node.run_command(RESOLVE, 5)
    assert answer.error is None and '"IPAddress":"10.96.0.1"' in answer.output


def test_a_nodeport_never_answers_from_the_node_itself(tmp_path: Path) -> None:
    node = runner("healthy", tmp_path)
    assert "Timeout" in str(node.run_command([*CURL, "http://127.0.0.1:30080/"], 5).error)
