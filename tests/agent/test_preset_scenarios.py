"""The preset scenarios (agent/scenarios/presets): recorded in the script's document form, read whole."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from agent.collect import Collector
from agent.config import AgentConfig
from agent.scenario import ScenarioRunner
from agent.state import AgentState
from diagnostics.model import Status
from diagnostics.probes import PROBES
from diagnostics.registry import run
from diagnostics.report import parse_report, snapshot_from_report

PRESETS = Path(__file__).resolve().parents[2] / "agent" / "scenarios" / "presets"


def _collect(tmp_path: Path, name: str) -> dict:
    cfg = AgentConfig(dashboard="http://127.0.0.1:1", state_dir=str(tmp_path / "state"))
    runner = ScenarioRunner(PRESETS / name / "scenario.json", tmp_path / "replay")
    collector = Collector(cfg, runner, AgentState(tmp_path / "state" / "state.json"))
    report = collector.collect().report
    report["_preset"] = collector.layout.preset
    return report


@pytest.mark.parametrize("name", ["kubeadm-hostprocess", "large-node", "localized-de"])
def test_every_probe_of_the_document_is_read_whole(tmp_path: Path, name: str) -> None:
    report = _collect(tmp_path, name)
    assert set(report["probes"]) == {p.id for p in PROBES}
    for probe_id, entry in report["probes"].items():
        assert entry["error"] is None, (probe_id, entry["error"])
        assert not entry["truncated"] and not entry["timed_out"], probe_id
        assert "parse_error" not in entry, (probe_id, entry.get("parse_error"))


def test_the_kubeadm_node_is_recognised_and_its_hostprocess_logs_are_read(tmp_path: Path) -> None:
    report = _collect(tmp_path, "kubeadm-hostprocess")
    assert report["_preset"] == "kubeadm"
    assert report["logs"]["kube-proxy"]["path"].startswith("C:\\var\\log\\pods\\kube-system_kube-proxy-windows-")
    assert report["logs"]["kubelet"]["path"] == r"C:\var\log\kubelet\kubelet.err.log"
    assert report["files"]["kubeadm-flags.env"]["exists"] is True
    assert "--pod-infra-container-image=registry.k8s.io/pause:3.10" in report["files"]["kubeadm-flags.env"]["content"]


def test_the_large_node_keeps_every_endpoint_and_load_balancer(tmp_path: Path) -> None:
    report = _collect(tmp_path, "large-node")
    report.pop("_preset")
    body = json.dumps(report, separators=(",", ":")).encode()
    snap = snapshot_from_report(parse_report(json.loads(body)))
    assert snap.hns_endpoints is not None and len(snap.hns_endpoints.value) == 2000
    assert snap.hns_policies is not None and len(snap.hns_policies.value) == 1000
    assert snap.incomplete == {}
    assert not [f for f in run(snap) if f.check.startswith("hns.") and f.status is Status.FAIL]
    # Within what the dashboard accepts by default (5 MiB sent, 20 MiB inflated).
    assert len(gzip.compress(body)) < 5 * 1024 * 1024 and len(body) < 20 * 1024 * 1024


def test_the_german_node_reads_like_the_english_one(tmp_path: Path) -> None:
    report = _collect(tmp_path, "localized-de")
    snap = snapshot_from_report(parse_report(json.loads(json.dumps(report))))
    assert snap.excluded_ports is not None and len(snap.excluded_ports.value) == 4
    assert snap.udp_excluded_ports is not None and len(snap.udp_excluded_ports.value) == 4
    assert snap.ip_config is not None and snap.ip_config.value[0].ipv4 == ("10.0.1.11",)


@pytest.mark.parametrize("name", ["kubeadm-hostprocess", "localized-de"])
def test_the_healthy_preset_nodes_fail_no_check(tmp_path: Path, name: str) -> None:
    # On kubeadm, kube-proxy and flanneld run as HostProcess pods: plain processes that a DaemonSet restarts.
    report = _collect(tmp_path, name)
    report.pop("_preset")
    snap = snapshot_from_report(parse_report(json.loads(json.dumps(report))))
    assert [f.check for f in run(snap) if f.status is Status.FAIL] == []


def test_a_hung_hns_is_reported_as_such_and_its_checks_stay_undecided(tmp_path: Path) -> None:
    scenario = tmp_path / "kubeadm" / "scenario.json"
    shutil.copytree(PRESETS / "kubeadm-hostprocess", scenario.parent)
    shutil.copytree(PRESETS.parent / "healthy", tmp_path / "healthy")  # the logs and files it shares
    doc = json.loads(scenario.read_text())
    doc["variant"] = "hns-hung"
    for section in ("files", "logs"):
        for spec in doc[section].values():
            if "source" in spec:
                spec["source"] = spec["source"].replace("../../healthy/", "../healthy/")
    scenario.write_text(json.dumps(doc))
    cfg = AgentConfig(dashboard="http://127.0.0.1:1", state_dir=str(tmp_path / "state"))
    collector = Collector(cfg, ScenarioRunner(scenario, tmp_path / "replay"), AgentState(tmp_path / "s.json"))
    report = collector.collect().report
    assert report["probes"]["hns.networks"]["timed_out"] is True
    assert report["probes"]["services"]["error"] is None
    snap = snapshot_from_report(parse_report(json.loads(json.dumps(report))))
    findings = {(f.check, f.status) for f in run(snap)}
    assert ("node.hns-unresponsive", Status.FAIL) in findings
    assert ("hns.lb-policy-missing", Status.UNKNOWN) in findings
    assert not [f for f in run(snap) if f.check.startswith("hns.") and f.status is Status.FAIL]
