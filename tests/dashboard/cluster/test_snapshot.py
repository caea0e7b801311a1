"""``api_base_snapshot``: the API half of a node's snapshot, and its merge with the agent's report."""

from __future__ import annotations

import pytest

from dashboard.cluster.snapshot import api_base_snapshot
from dashboard.diagnosis import diagnose_report
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
    stored = store_report(node, report)
    assert diagnose_report(stored.pk)
    open_checks = set(node.findings.filter(resolved_at__isnull=True).values_list("check_id", flat=True))
    assert "pause.image-incompatible" in open_checks  # from the pod's FailedCreatePodSandBox events
    assert "flannel.subnet-env-missing" in open_checks  # from the report
