"""What the dashboard reads from the API, and the read-only ClusterRole that allows exactly that."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dashboard.cluster.resources import ENROLLMENT, RESOURCES, VERBS, is_windows_node, pod_asks_for_windows

from .conftest import api_list

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "deploy" / "kubernetes" / "base" / "dashboard"


def test_the_cluster_role_grants_exactly_what_the_source_and_enrollment_use() -> None:
    docs = list(yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    used = {(r.group, r.plural, verb) for r in RESOURCES for verb in VERBS} | set(ENROLLMENT)
    assert granted == used
    writes = {(g, r, v) for g, r, v in granted if v not in VERBS}
    assert writes == {("authentication.k8s.io", "tokenreviews", "create")}  # reviewing a token changes nothing
    assert all(not rule.get("resourceNames") and not rule.get("nonResourceURLs") for rule in role["rules"])


def test_the_binding_gives_the_role_to_the_watchers_service_account() -> None:
    docs = list(yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text()))
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    deployments = yaml.safe_load_all((MANIFESTS / "watcher.yaml").read_text())
    watcher = next(d for d in deployments if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("watcher"))
    account = watcher["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["roleRef"]["name"] == next(d for d in docs if d["kind"] == "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "windows-node-doctor"}]


@pytest.mark.parametrize(
    ("name", "windows"), [("lnx-01", False), ("win-2019", True), ("win-2022", True), ("win-2025", True)]
)
def test_it_tells_windows_nodes_by_their_labels(name: str, windows: bool) -> None:
    node = next(n for n in api_list("nodes")["items"] if n["metadata"]["name"] == name)
    assert is_windows_node(node) is windows


def test_it_tells_windows_nodes_by_node_info_when_labels_are_missing() -> None:
    node = next(n for n in api_list("nodes")["items"] if n["metadata"]["name"] == "win-2019")
    node["metadata"]["labels"] = {}
    assert is_windows_node(node)


def test_a_pending_pod_with_a_windows_image_asks_for_windows() -> None:
    pending = next(p for p in api_list("pods")["items"] if "nodeName" not in p["spec"])
    assert pod_asks_for_windows(pending["spec"])
    linux = {"containers": [{"name": "dns", "image": "registry.k8s.io/coredns/coredns:v1.11.3"}]}
    assert not pod_asks_for_windows(linux)
