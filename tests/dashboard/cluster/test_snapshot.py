"""``api_base_snapshot(s)`` and ``ClusterContext``: the API half of a node's snapshot, its merge with a report."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.cluster.models import SourceState
from dashboard.cluster.resources import BY_KIND
from dashboard.cluster.snapshot import ClusterContext, api_base_snapshot, api_base_snapshots
from dashboard.diagnosis import check_node
from dashboard.models import Node, enroll
from tests.dashboard.reports import make_report

from .conftest import lab_source, store_report, sync_now

pytestmark = pytest.mark.django_db


def test_it_carries_the_node_its_pods_its_events_and_the_cluster() -> None:
    sync_now(lab_source(), diagnose=False)
    snap = api_base_snapshot(Node.objects.get(cluster__name="lab", name="win-2025"))
    assert snap is not None
    assert snap.node_object is not None and snap.node_object.source == "api:lab Node/win-2025"
    assert snap.host_build() is not None and snap.host_build().value == 26100
    assert snap.pods is not None and [p["metadata"]["name"] for p in snap.pods.value] == ["web-6b9f7c8d4-sssss"]
    assert snap.events is not None and snap.events.value[0]["reason"] == "FailedCreatePodSandBox"
    view = snap.cluster_view
    assert view is not None and view.server_version == "v1.31.1"
    assert {s["metadata"]["name"] for s in view.services} == {"kubernetes", "kube-dns", "web"}
    assert len(view.endpoint_slices) == 3
    assert [p.node for p in view.peers] == ["win-2019", "win-2022"]
    assert view.peers[0].facts["os_build"] == "17763"


def test_it_is_none_for_a_node_the_api_never_listed() -> None:
    node, _token = enroll("lab", "win-elsewhere")
    assert api_base_snapshot(node) is None


def test_a_reports_diagnosis_includes_the_api_facts() -> None:
    sync_now(lab_source(), diagnose=False)
    node, _token = enroll("lab", "win-2025")
    report = make_report(cluster="lab", node="win-2025", subnet_env=None)
    store_report(node, report)
    assert check_node(node.pk)
    open_checks = set(node.findings.filter(resolved_at__isnull=True).values_list("check_id", flat=True))
    assert "pause.image-incompatible" in open_checks  # from the pod's FailedCreatePodSandBox events
    assert "flannel.subnet-env-missing" in open_checks  # from the report


def test_a_nodes_change_reloads_the_peers_and_keeps_the_services() -> None:
    source = lab_source()
    store = sync_now(source, diagnose=False)
    before = ClusterContext.current(store.cluster.pk, "lab")
    assert ClusterContext.current(store.cluster.pk, "lab") is before  # nothing changed
    node = source.get("Node", "win-2019")
    node["status"]["nodeInfo"]["kubeletVersion"] = "v1.27.16"
    store.apply(BY_KIND["Node"], source.apply("Node", node))
    after = ClusterContext.current(store.cluster.pk, "lab")
    assert after.services is before.services and after.endpoint_slices is before.endpoint_slices
    assert after.peers is not before.peers
    assert dict(after.peers[0].facts)["kubelet_minor"] == "27"
    slice_ = source.objects("EndpointSlice")[0]
    slice_["endpoints"] = []
    store.apply(BY_KIND["EndpointSlice"], source.apply("EndpointSlice", slice_))
    latest = ClusterContext.current(store.cluster.pk, "lab")
    assert latest.peers is after.peers and latest.endpoint_slices is not after.endpoint_slices
    SourceState.objects.update(server_version="v1.32.0")
    assert ClusterContext.current(store.cluster.pk, "lab").server_version == "v1.32.0"


def test_a_nodes_view_leaves_out_only_the_node_itself() -> None:
    store = sync_now(lab_source(), diagnose=False)
    context = ClusterContext.current(store.cluster.pk, "lab")
    assert [p.node for p in context.view_for("win-2022").peers] == ["win-2019", "win-2025"]
    assert [p.node for p in context.view_for("win-2019").peers] == ["win-2022", "win-2025"]
    assert [p.node for p in context.view_for("win-elsewhere").peers] == ["win-2019", "win-2022", "win-2025"]


def test_without_workloads_the_snapshots_leave_out_pods_and_events() -> None:
    store = sync_now(lab_source(), diagnose=False)
    nodes = list(Node.objects.filter(cluster=store.cluster, name__in=["win-2025", "lnx-01"]))
    context = ClusterContext.current(store.cluster.pk, "lab")
    with CaptureQueriesContext(connection) as queries:
        lean = api_base_snapshots(nodes, context, workloads=False)
    assert len(queries) == 1  # the Node objects only
    full = api_base_snapshots(nodes, context)
    assert set(lean) == set(full)
    for name, snap in lean.items():
        assert snap.pods is None and snap.events is None
        assert snap.node_object == full[name].node_object and snap.cluster_view == full[name].cluster_view
