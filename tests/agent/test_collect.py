from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.app import Agent
from agent.collect import Collector
from agent.config import AgentConfig
from agent.scenario import ScenarioRunner
from agent.state import AgentState
from diagnostics.probes import PROBES
from diagnostics.report import parse_report

from .conftest import SCENARIOS


def _collector(tmp_path: Path, scenario: Path) -> Collector:
    cfg = AgentConfig(dashboard="http://127.0.0.1:1", cluster="", state_dir=str(tmp_path / "state"))
    runner = ScenarioRunner(scenario, tmp_path / "replay")
    return Collector(cfg, runner, AgentState(tmp_path / "state" / "state.json"))


@pytest.mark.parametrize("name", sorted(p.parent.name for p in SCENARIOS.glob("*/scenario.json")))
def test_every_scenario_gives_a_valid_report_with_every_probe_parsed(tmp_path: Path, name: str) -> None:
    collection = _collector(tmp_path, SCENARIOS / name / "scenario.json").collect()
    report = parse_report(json.loads(json.dumps(collection.report)))
    assert report.sequence == 1
    assert set(report.probes) == {p.id for p in PROBES}
    # The demo's nodes were recorded before the routes, MTU, UDP port and Hyper-V probes existed:
    # those say so; every probe they recorded is read.
    recorded = json.loads((SCENARIOS / name / "scenario.json").read_text())["probes"]
    for probe_id, entry in collection.report["probes"].items():
        if probe_id not in recorded:
            assert "is not recorded" in entry["error"], probe_id
            continue
        assert entry["error"] is None, probe_id
        assert "parse_error" not in entry, (probe_id, entry.get("parse_error"))
    assert {"kubelet", "kube-proxy", "flanneld", "containerd"} <= set(report.logs)


def test_the_demo_fleet_has_seven_nodes_over_two_clusters() -> None:
    docs = [json.loads(p.read_text()) for p in SCENARIOS.glob("*/scenario.json")]
    assert len(docs) == 7
    assert {d["cluster"] for d in docs} == {"prod-eu", "staging-us"}
    assert len({d["node"] for d in docs}) == 7


def test_an_absent_known_file_is_reported_as_absent(tmp_path: Path) -> None:
    collection = _collector(tmp_path, SCENARIOS / "subnet-env-missing" / "scenario.json").collect()
    entry = collection.report["files"]["subnet.env"]
    assert entry == {"path": "C:\\run\\flannel\\subnet.env", "exists": False, "content": None, "error": None}
    assert parse_report(collection.report).files["subnet.env"].content is None


def test_a_failing_probe_records_its_error_and_the_report_still_goes(tmp_path: Path) -> None:
    scenario_dir = tmp_path / "node"
    shutil.copytree(SCENARIOS / "healthy", scenario_dir)
    doc = json.loads((scenario_dir / "scenario.json").read_text())
    doc["probes"]["bitlocker"] = {
        "output": "",
        "error": "Get-BitLockerVolume : The term 'Get-BitLockerVolume' is not recognized as the name of a cmdlet",
    }
    doc["probes"]["hns.networks"] = {"output": '{\r\n    "Name":  "cbr0",\r\n    "Ty'}
    (scenario_dir / "scenario.json").write_text(json.dumps(doc))
    collection = _collector(tmp_path, scenario_dir / "scenario.json").collect()
    probes = collection.report["probes"]
    assert probes["bitlocker"]["error"].startswith("Get-BitLockerVolume : The term")
    assert probes["bitlocker"]["parsed"] is None
    assert probes["hns.networks"]["error"] is None and "unreadable JSON" in probes["hns.networks"]["parse_error"]
    assert probes["os.version"]["parsed"]["build"] == 20348
    parse_report(collection.report)


def test_the_flanneld_log_keeps_growing_with_the_waiting_line(tmp_path: Path, dashboard) -> None:
    cfg = AgentConfig(dashboard=dashboard.url, state_dir=str(tmp_path / "state"))
    agent = Agent(
        cfg, ScenarioRunner(SCENARIOS / "flanneld-waiting-for-network" / "scenario.json", tmp_path / "replay")
    )
    for _ in range(4):
        agent.cycle()
    texts = [r["logs"]["flanneld"]["text"] for r in dashboard.reports]
    assert all("Waiting for the Network to be created" in t for t in texts[1:])
    offsets = [r["logs"]["flanneld"]["offset"] for r in dashboard.reports]
    assert offsets == sorted(offsets) and len(set(offsets)) == 4
    assert all(r["logs"]["kubelet"]["text"] == "" for r in dashboard.reports[1:])  # nothing sent twice


def test_rewriting_the_scenario_switches_the_fault_off_and_on(tmp_path: Path, dashboard) -> None:
    scenario_dir = tmp_path / "node"
    shutil.copytree(SCENARIOS / "subnet-env-missing", scenario_dir)
    path = scenario_dir / "scenario.json"
    cfg = AgentConfig(dashboard=dashboard.url, state_dir=str(tmp_path / "state"))
    agent = Agent(cfg, ScenarioRunner(path, tmp_path / "replay"))

    def set_variant(name: str | None) -> None:
        doc = json.loads(path.read_text())
        doc["variant"] = name
        path.write_text(json.dumps(doc))

    agent.cycle()
    set_variant("fixed")
    agent.cycle()
    set_variant(None)
    agent.cycle()
    exists = [r["files"]["subnet.env"]["exists"] for r in dashboard.reports]
    assert exists == [False, True, False]
    assert "FLANNEL_SUBNET=10.244.2.1/24" in dashboard.reports[1]["files"]["subnet.env"]["content"]


def test_steps_switch_variants_by_cycle(tmp_path: Path) -> None:
    scenario_dir = tmp_path / "node"
    shutil.copytree(SCENARIOS / "cbr0-network-missing", scenario_dir)
    doc = json.loads((scenario_dir / "scenario.json").read_text())
    doc["steps"] = [{"cycles": 2}, {"cycles": 1, "variant": "fixed"}]
    (scenario_dir / "scenario.json").write_text(json.dumps(doc))
    runner = ScenarioRunner(scenario_dir / "scenario.json", tmp_path / "replay")
    seen = []
    for _ in range(4):
        runner.begin_cycle()
        seen.append(runner.variant())
    assert seen == [None, None, "fixed", None]
