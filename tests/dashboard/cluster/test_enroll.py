"""Agents of a DaemonSet enroll themselves with projected ServiceAccount tokens, against the real API server.

Three Windows nodes run one DaemonSet's agents; each pod's token is a TokenRequest token
bound to the pod (what kubelet mounts from a projected ``serviceAccountToken`` volume),
of the dashboard's audience. The dashboard reviews it with the watcher's own
configuration (the dashboard's ServiceAccount and the shipped ClusterRole).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from dashboard.cluster import enroll
from dashboard.models import Node, Report
from tests.dashboard.reports import make_report
from tests.kubeapi import ApiError, KubeApi

NAMESPACE, AGENT = "windows-node-doctor", "node-doctor-agent"
AUDIENCE = "windows-node-doctor"
NODES = ("win-2019", "win-2022", "win-2025")


AGENT_IMAGE = "registry.example.com/windows-node-doctor-agent:0.1.0"


def agent_pod(kube: KubeApi, daemonset: dict[str, Any], node: str, account: str = AGENT) -> dict[str, Any]:
    """The DaemonSet's pod on ``node``, as its controller would create it (created here: no controllers run)."""
    return kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{daemonset['metadata']['name']}-{node}" + ("" if account == AGENT else f"-{account}"),
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/name": AGENT},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": daemonset["metadata"]["name"],
                        "uid": daemonset["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "nodeName": node,
                "serviceAccountName": account,
                "nodeSelector": {"kubernetes.io/os": "windows"},
                "containers": [{"name": "agent", "image": AGENT_IMAGE}],
            },
        }
    )


@pytest.fixture
def fleet(kube: KubeApi, tmp_path: Path, settings: Any, transactional_db: Any) -> dict[str, Any]:
    """The lab cluster watched as ``lab`` (the dashboard's ServiceAccount), an agent DaemonSet and its three pods."""
    kubeconfig = kube.kubeconfig_for(tmp_path / "dashboard.kubeconfig", token=kube.dashboard_token(), context="lab")
    settings.WND_CLUSTERS, settings.WND_CLUSTERS_FILE, settings.WND_KUBECONFIG = "lab", "", str(kubeconfig)
    settings.WND_AGENT_AUDIENCE = AUDIENCE
    settings.WND_AGENT_SERVICE_ACCOUNT = f"{NAMESPACE}/{AGENT}"
    enroll.forget()
    kube.service_account(NAMESPACE, AGENT)
    name = "node-doctor-agent"
    with contextlib.suppress(ApiError):  # absent the first time
        kube.request("DELETE", f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{name}")
    daemonset = kube.request(
        "POST",
        f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets",
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": AGENT}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": AGENT}},
                    "spec": {
                        "serviceAccountName": AGENT,
                        "containers": [{"name": "agent", "image": AGENT_IMAGE}],
                    },
                },
            },
        },
    )[1]
    pods = {node: agent_pod(kube, daemonset, node) for node in NODES}
    tokens = {node: kube.token(NAMESPACE, AGENT, audiences=[AUDIENCE], pod=pods[node]) for node in NODES}
    yield {"daemonset": daemonset, "pods": pods, "tokens": tokens}
    enroll.forget()


def post(client: Any, token: str, node: str, cluster: str = "lab") -> Any:
    return client.post(
        "/api/v1/reports",
        data=json.dumps(make_report(cluster=cluster, node=node)).encode(),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def message(response: Any) -> str:
    return str(response.json().get("error") or response.json())


def test_three_nodes_of_one_daemonset_enroll_on_their_first_report(client: Any, fleet: dict[str, Any]) -> None:
    assert not Node.objects.filter(cluster__name="lab", name__in=NODES, last_report_at__isnull=False).exists()
    for node, token in fleet["tokens"].items():
        response = post(client, token, node)
        assert response.status_code == 202, message(response)
    enrolled = Node.objects.filter(cluster__name="lab", name__in=NODES)
    assert sorted(n.name for n in enrolled if n.last_report_at) == list(NODES)
    assert Report.objects.filter(node__in=enrolled).count() == 3
    assert not enrolled.filter(tokens__isnull=False).exists()  # no token made by hand


def test_a_token_of_another_service_account_is_refused(kube: KubeApi, client: Any, fleet: dict[str, Any]) -> None:
    kube.service_account(NAMESPACE, "someone-else")
    pod = agent_pod(kube, fleet["daemonset"], "win-2022", account="someone-else")
    pod_token = kube.token(NAMESPACE, "someone-else", audiences=[AUDIENCE], pod=pod)
    response = post(client, pod_token, "win-2022")
    assert response.status_code == 403
    assert "system:serviceaccount:windows-node-doctor:someone-else" in message(response)
    assert "not of the agent's ServiceAccount windows-node-doctor/node-doctor-agent" in message(response)


def test_a_token_of_a_deleted_pod_is_refused(kube: KubeApi, client: Any, fleet: dict[str, Any]) -> None:
    kube.delete("Pod", fleet["pods"]["win-2025"]["metadata"]["name"], NAMESPACE)
    response = post(client, fleet["tokens"]["win-2025"], "win-2025")
    assert response.status_code == 401
    assert "its pod deleted" in message(response)
    assert not Report.objects.exists()


def test_a_token_reused_on_another_node_is_refused(client: Any, fleet: dict[str, Any]) -> None:
    response = post(client, fleet["tokens"]["win-2019"], "win-2022")
    assert response.status_code == 403
    assert "this token belongs to lab/win-2019, not lab/win-2022" in message(response)
    assert not Report.objects.exists()


def test_a_token_for_another_audience_is_refused(kube: KubeApi, client: Any, fleet: dict[str, Any]) -> None:
    token = kube.token(NAMESPACE, AGENT, audiences=["https://kubernetes.default.svc.cluster.local"])
    response = post(client, token, "win-2019")
    assert response.status_code == 401
    assert "audience 'windows-node-doctor'" in message(response)


def test_a_node_that_left_the_cluster_is_no_longer_accepted(kube: KubeApi, client: Any, fleet: dict[str, Any]) -> None:
    assert post(client, fleet["tokens"]["win-2019"], "win-2019").status_code == 202
    kube.delete("Node", "win-2019")
    enroll.forget()  # reviews are kept for a few seconds; the next one sees the node gone
    response = post(client, fleet["tokens"]["win-2019"], "win-2019")
    assert response.status_code == 403
    assert "node win-2019 is no longer in the cluster" in message(response)


def test_reviews_are_kept_briefly_so_ingest_stays_fast(
    client: Any, fleet: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = enroll._review
    monkeypatch.setattr(enroll, "_review", lambda raw: calls.append(raw) or original(raw))
    for _ in range(3):
        assert post(client, fleet["tokens"]["win-2022"], "win-2022").status_code == 202
    assert len(calls) == 1
