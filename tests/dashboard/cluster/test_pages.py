"""The Workloads page, the clusters' state on the fleet page, and the pods on a node's page."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.cluster.models import SourceState

from .conftest import lab_source, sync_now

pytestmark = pytest.mark.django_db


def test_the_workloads_page_needs_a_login(client: Any) -> None:
    response = client.get("/workloads")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_workloads_page_filters_by_namespace_and_check(client: Any, viewer: Any) -> None:
    sync_now(lab_source())
    client.force_login(viewer)
    html = client.get("/workloads").content.decode()
    assert "apps/host-network-5d8f7c6b9-aaaaa" in html and 'href="/workloads"' in html
    only = client.get("/workloads", {"namespace": "apps", "check": "workload.nfs-volume"}).content.decode()
    assert "nfs-share-5d8f7c6b9-kkkkk" in only and "host-network-5d8f7c6b9-aaaaa" not in only
    none = client.get("/workloads", {"namespace": "kube-system"}).content.decode()
    assert "No workload finding matches these filters." in none


def test_the_workloads_page_is_paginated_and_htmx_gets_the_table(client: Any, viewer: Any, settings: Any) -> None:
    settings.WND_WORKLOADS_PAGE_SIZE = 5
    sync_now(lab_source())
    client.force_login(viewer)
    first = client.get("/workloads").content.decode()
    assert "Page 1 of" in first and 'rel="next"' in first
    fragment = client.get("/workloads", {"page": "2"}, HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<section id="workloads-table"') and "Page 2 of" in fragment


def test_the_fleet_shows_each_clusters_source_state(client: Any, viewer: Any) -> None:
    store = sync_now(lab_source(), diagnose=False)
    store.set_state(SourceState.ERROR, "Forbidden: the dashboard's account may not watch pods (cluster-wide).")
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert 'data-cluster="lab"' in html and "API error" in html
    assert "may not watch pods" in html
    assert "no agent" in html  # the Windows nodes only the API knows


def test_a_node_page_lists_its_pods_and_their_workload_findings(client: Any, viewer: Any) -> None:
    sync_now(lab_source())
    client.force_login(viewer)
    html = client.get("/clusters/lab/nodes/win-2022/").content.decode()
    assert 'data-pod="apps/privileged-5d8f7c6b9-ccccc"' in html
    assert "<code>workload.privileged</code>" in html
    assert "no agent: API checks only" in html
