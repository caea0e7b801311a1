"""The store: what is kept of the API, the Node rows it mirrors, and what each change affects."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dashboard.cluster.models import ApiObject
from dashboard.cluster.resources import NODES, PODS
from dashboard.cluster.source import WatchEvent
from dashboard.models import AgentToken, Node

from .conftest import lab_source, sync_now

pytestmark = pytest.mark.django_db


def test_windows_nodes_become_nodes_without_an_agent_and_linux_nodes_do_not() -> None:
    sync_now(lab_source(), diagnose=False)
    nodes = {n.name: n for n in Node.objects.filter(cluster__name="lab")}
    assert sorted(nodes) == ["win-2019", "win-2022", "win-2025"]
    assert all(n.in_api and not n.has_agent for n in nodes.values())
    assert nodes["win-2019"].os_build == "10.0.17763.1577"
    assert nodes["win-2025"].os_name == "Windows Server 2025 Datacenter"
    assert nodes["win-2022"].kubelet_version == "v1.31.1"
    assert ApiObject.objects.filter(kind="Node", name="lnx-01", windows=False).exists()


def test_only_pods_for_windows_are_kept() -> None:
    source = lab_source()
    coredns = copy.deepcopy(source.objects("Pod")[0])
    coredns["metadata"].update(name="coredns-7c65d6cfc9-8xq2v", namespace="kube-system")
    coredns["spec"].update(nodeName="lnx-01", nodeSelector={"kubernetes.io/os": "linux"})
    coredns["spec"]["containers"][0]["image"] = "registry.k8s.io/coredns/coredns:v1.11.3"
    source.apply("Pod", coredns)
    store = sync_now(source, diagnose=False)
    stored = set(ApiObject.objects.filter(kind="Pod").values_list("name", flat=True))
    assert "coredns-7c65d6cfc9-8xq2v" not in stored
    assert "no-selector-5d8f7c6b9-qqqqq" in stored  # pending, with a Windows image
    assert ("apps", "web-6b9f7c8d4-sssss") in store.pods


def test_a_heartbeat_affects_nothing_but_a_new_kubelet_affects_every_windows_node() -> None:
    source = lab_source()
    store = sync_now(source, diagnose=False)
    node = source.get("Node", "win-2022")
    for condition in node["status"]["conditions"]:
        condition["lastHeartbeatTime"] = "2024-11-24T09:20:52Z"
    assert not store.apply(NODES, source.apply("Node", node)).any
    node["status"]["nodeInfo"]["kubeletVersion"] = "v1.31.4"
    affected = store.apply(NODES, source.apply("Node", node))
    assert affected.nodes == {"win-2022"} and affected.cluster_wide


def test_a_pod_moving_between_nodes_affects_both() -> None:
    source = lab_source()
    store = sync_now(source, diagnose=False)
    pod = source.get("Pod", "clean-5d8f7c6b9-rrrrr", "apps")
    pod["spec"]["nodeName"] = "win-2019"
    affected = store.apply(PODS, source.apply("Pod", pod))
    assert affected.nodes == {"win-2019", "win-2022"}
    assert affected.pods == {("apps", "clean-5d8f7c6b9-rrrrr")}
    gone = store.apply(PODS, source.apply("Pod", pod, "DELETED"))
    assert gone.nodes == {"win-2019"}
    assert not ApiObject.objects.filter(kind="Pod", name="clean-5d8f7c6b9-rrrrr").exists()


def test_a_node_gone_from_the_api_is_marked_when_an_agent_or_token_knows_it(django_user_model: Any) -> None:
    source = lab_source()
    store = sync_now(source, diagnose=False)
    AgentToken.issue(Node.objects.get(name="win-2019"))
    store.apply(NODES, WatchEvent("DELETED", source.get("Node", "win-2019")))
    store.apply(NODES, WatchEvent("DELETED", source.get("Node", "win-2025")))
    marked = Node.objects.get(name="win-2019")
    assert not marked.in_api and marked.api_removed_at is not None
    assert not Node.objects.filter(name="win-2025").exists()  # nothing but the API knew it


def test_a_relist_marks_the_nodes_it_no_longer_has() -> None:
    source = lab_source()
    store = sync_now(source, diagnose=False)
    AgentToken.issue(Node.objects.get(name="win-2022"))
    source.apply("Node", source.get("Node", "win-2022"), "DELETED")
    store.replace(NODES, source.list(NODES))
    assert Node.objects.get(name="win-2022").api_removed_at is not None
    assert Node.objects.get(name="win-2019").in_api
