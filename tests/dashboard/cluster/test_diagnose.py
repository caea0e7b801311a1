"""API-side diagnosis end to end: workload checks, nodes without an agent, and the cluster-wide checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent.collect import Collector
from agent.config import AgentConfig
from agent.scenario import ScenarioRunner
from agent.state import AgentState
from dashboard.cluster.diagnose import ENDPOINT_CHECKS, PEER_CHECKS, recheck_nodes
from dashboard.cluster.models import ApiObject, SourceState, WorkloadFinding
from dashboard.cluster.resources import ENDPOINT_SLICES, PODS
from dashboard.cluster.simulated import SimulatedSource
from dashboard.cluster.snapshot import ClusterContext, api_base_snapshots
from dashboard.models import Node, enroll
from dashboard.monitoring import FindingEvent
from diagnostics.registry import all_checks, run

from .conftest import api_list, lab_source, store_report, sync_now, wait_for

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
    recheck_nodes(store.cluster, ["win-stg-03"])
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
    recheck_nodes(store.cluster, ["win-stg-03"], only=(*ENDPOINT_CHECKS, *PEER_CHECKS))
    found = open_checks(node)
    assert "hns.stale-remote-endpoints" not in found
    assert "hns.lb-policy-missing" in found


@pytest.mark.django_db
def test_the_demos_healthy_node_stays_healthy_with_its_api_facts(tmp_path: Path) -> None:
    store = sync_now(SimulatedSource.recorded("prod-eu"), diagnose=False)
    node, _token = enroll("prod-eu", "win-prod-01")
    store_report(node, scenario_report(tmp_path, "healthy"))
    recheck_nodes(store.cluster, ["win-prod-01"])
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


def windows_fleet(cluster: str, count: int) -> SimulatedSource:
    """``count`` copies of the lab's Windows Server 2022 node, with their names, uids and pod CIDRs."""
    template = next(n for n in api_list("nodes")["items"] if n["metadata"]["name"] == "win-2022")
    nodes = []
    for i in range(count):
        node = copy.deepcopy(template)
        node["metadata"].update(name=f"win-{i:02d}", uid=f"00000000-0000-4000-8000-{i:012d}")
        node["spec"]["podCIDR"] = node["spec"]["podCIDRs"][0] = f"10.244.{10 + i}.0/24"
        nodes.append(node)
    return SimulatedSource(cluster, {"Node": nodes}, version="v1.31.1")


@pytest.mark.django_db
def test_the_peer_checks_find_the_same_without_the_nodes_pods_and_events() -> None:
    source = lab_source()
    node = source.get("Node", "win-2019")
    node["status"]["nodeInfo"].update(kubeletVersion="v1.27.16", containerRuntimeVersion="containerd://1.6.28")
    source.apply("Node", node)
    store = sync_now(source, diagnose=False)
    nodes = list(Node.objects.filter(cluster=store.cluster, name__in=store.windows_nodes).select_related("cluster"))
    context = ClusterContext.current(store.cluster.pk, store.cluster.name)
    full = api_base_snapshots(nodes, context)
    lean = api_base_snapshots(nodes, context, workloads=False)
    assert all(snap.pods is None and snap.events is None for snap in lean.values())
    assert not any("workloads" in all_checks()[c].reads for c in PEER_CHECKS)
    found = {name: run(snap, PEER_CHECKS) for name, snap in full.items()}
    assert {name: run(snap, PEER_CHECKS) for name, snap in lean.items()} == found
    assert {f.check for f in found["win-2019"]} == {"node.version-skew", "node.config-drift"}


@pytest.mark.django_db
def test_a_server_upgrade_is_stored_on_twenty_nodes_in_as_many_queries_as_on_one() -> None:
    one = sync_now(windows_fleet("one", 1)).cluster
    twenty = sync_now(windows_fleet("twenty", 20)).cluster
    SourceState.objects.update(server_version="v1.35.0")  # kubelet and kube-proxy v1.31: 4 minors behind
    with CaptureQueriesContext(connection) as for_one:
        assert recheck_nodes(one, ["win-00"], only=PEER_CHECKS) == 1
    with CaptureQueriesContext(connection) as for_twenty:
        assert recheck_nodes(twenty, [f"win-{i:02d}" for i in range(20)], only=PEER_CHECKS) == 20
    assert len(for_twenty) == len(for_one)
    for node in Node.objects.filter(cluster__in=[one, twenty]):
        assert open_checks(node) == {"node.version-skew"}
        assert node.health == "warning" and node.warning_count == 2 and node.open_checks == " node.version-skew "
    assert FindingEvent.objects.filter(kind=FindingEvent.OPENED, finding__check_id="node.version-skew").count() == 42


@pytest.mark.django_db
def test_nodes_whose_findings_did_not_change_are_not_written() -> None:
    cluster = sync_now(windows_fleet("steady", 3)).cluster
    names = sorted(Node.objects.filter(cluster=cluster).values_list("name", flat=True))
    with CaptureQueriesContext(connection) as queries:
        assert recheck_nodes(cluster, names, only=PEER_CHECKS) == 0
    assert not [q["sql"] for q in queries if not q["sql"].startswith("SELECT")]
