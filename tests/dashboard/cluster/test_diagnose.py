"""API-side diagnosis end to end: workload checks, nodes without an agent, and the cluster-wide checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.collect import Collector
from agent.config import AgentConfig
from agent.scenario import ScenarioRunner
from agent.state import AgentState
from dashboard.cluster.diagnose import CLUSTER_WIDE_CHECKS, diagnose_nodes
from dashboard.cluster.models import ApiObject, WorkloadFinding
from dashboard.cluster.resources import ENDPOINT_SLICES, PODS
from dashboard.cluster.simulated import SimulatedSource
from dashboard.models import Node, enroll

from .conftest import lab_source, store_report, sync_now, wait_for

SCENARIOS = Path(__file__).resolve().parents[3] / "agent" / "scenarios"


def open_checks(node: Node) -> set[str]:
    return set(node.findings.filter(resolved_at__isnull=True, status="fail").values_list("check_id", flat=True))


def scenario_report(tmp_path: Path, scenario: str) -> dict[str, Any]:
    config = AgentConfig(dashboard="http://127.0.0.1:1", cluster="", state_dir=str(tmp_path / "state"))
    runner = ScenarioRunner(SCENARIOS / scenario / "scenario.json", tmp_path / "replay")
    report: dict[str, Any] = json.loads(
        json.dumps(Collector(config, runner, AgentState(tmp_path / "state" / "state.json")).collect().report)
    )
    return report


@pytest.mark.django_db
def test_every_unsupported_field_gets_its_workload_finding() -> None:
    source = lab_source()
    sync_now(source)
    for pod in source.objects("Pod"):
        meta = pod["metadata"]
        expected = (meta.get("annotations") or {}).get("fixtures.example/expects")
        found = set(
            WorkloadFinding.objects.filter(namespace=meta["namespace"], name=meta["name"]).values_list(
                "check_id", flat=True
            )
        )
        if expected:
            assert expected in found, meta["name"]
        elif meta["name"] == "clean-5d8f7c6b9-rrrrr":
            assert found == set()


@pytest.mark.django_db
def test_a_node_without_an_agent_gets_api_only_findings_and_no_unknowns() -> None:
    sync_now(lab_source())
    node = Node.objects.get(cluster__name="lab", name="win-2025")
    assert "pause.image-incompatible" in open_checks(node)
    assert not node.findings.filter(status="unknown").exists()
    assert node.health == "critical"


@pytest.mark.django_db
def test_a_kubelet_too_old_for_the_api_server_is_found() -> None:
    source = lab_source()
    node = source.get("Node", "win-2019")
    node["status"]["nodeInfo"].update(kubeletVersion="v1.27.3", kubeProxyVersion="v1.27.3")
    source.apply("Node", node)
    sync_now(source)
    assert "node.version-skew" in open_checks(Node.objects.get(name="win-2019"))
    assert "node.version-skew" not in open_checks(Node.objects.get(name="win-2022"))


@pytest.mark.django_db
def test_remote_endpoints_are_compared_with_the_clusters_endpoint_slices(tmp_path: Path) -> None:
    source = SimulatedSource.recorded("staging-us")
    store = sync_now(source, diagnose=False)
    node, _token = enroll("staging-us", "win-stg-03")
    store_report(node, scenario_report(tmp_path, "overlay-ws2019-hotfix-missing"))
    diagnose_nodes(store.cluster, ["win-stg-03"])
    found = open_checks(node)
    assert {"hns.stale-remote-endpoints", "hns.lb-policy-missing", "node.version-skew"} <= found
    # A pod elsewhere gets the remote endpoint's address: its slice now holds it, the endpoint is not stale.
    web = source.get("EndpointSlice", "web-b2kdx", "default")
    web["endpoints"].append(
        {"addresses": ["10.244.9.12"], "conditions": {"ready": True, "serving": True, "terminating": False},
         "nodeName": "win-stg-01"}
    )  # fmt: skip
    affected = store.apply(ENDPOINT_SLICES, source.apply("EndpointSlice", web))
    assert affected.cluster_wide
    diagnose_nodes(store.cluster, ["win-stg-03"], only=CLUSTER_WIDE_CHECKS)
    found = open_checks(node)
    assert "hns.stale-remote-endpoints" not in found
    assert "hns.lb-policy-missing" in found


@pytest.mark.django_db
def test_the_demos_healthy_node_stays_healthy_with_its_api_facts(tmp_path: Path) -> None:
    store = sync_now(SimulatedSource.recorded("prod-eu"), diagnose=False)
    node, _token = enroll("prod-eu", "win-prod-01")
    store_report(node, scenario_report(tmp_path, "healthy"))
    diagnose_nodes(store.cluster, ["win-prod-01"])
    assert open_checks(node) == set()


@pytest.mark.django_db
def test_the_demos_clusters_show_api_side_findings() -> None:
    sync_now(SimulatedSource.recorded("prod-eu"))
    sync_now(SimulatedSource.recorded("staging-us"))
    assert "pause.image-incompatible" in open_checks(Node.objects.get(name="win-prod-04"))
    assert "node.version-skew" in open_checks(Node.objects.get(name="win-stg-03"))
    assert open_checks(Node.objects.get(name="win-prod-01")) == set()
    assert WorkloadFinding.objects.filter(cluster__name="prod-eu", check_id="workload.os-selector-missing").exists()


def test_one_pod_change_reaches_the_findings_through_the_sync(run_sync: Any) -> None:
    source = lab_source()
    with run_sync(source) as running:
        running.settled()
        pod = source.get("Pod", "clean-5d8f7c6b9-rrrrr", "apps")
        pod["spec"]["hostNetwork"] = True
        source.apply("Pod", pod)
        wait_for(
            lambda: WorkloadFinding.objects.filter(
                name="clean-5d8f7c6b9-rrrrr", check_id="workload.host-network"
            ).exists(),
            what="the workload finding",
        )
        wait_for(lambda: "workload.host-network" in open_checks(Node.objects.get(name="win-2022")), what="the node's")
        source.apply("Pod", pod, "DELETED")
        wait_for(
            lambda: not WorkloadFinding.objects.filter(name="clean-5d8f7c6b9-rrrrr").exists(),
            what="the finding gone with the pod",
        )
    assert not ApiObject.objects.filter(kind=PODS.kind, name="clean-5d8f7c6b9-rrrrr").exists()
