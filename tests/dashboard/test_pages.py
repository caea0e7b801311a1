"""The fleet and node pages, for each persona."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.models import AgentToken, Cluster, Finding, Node, enroll

pytestmark = pytest.mark.django_db


def add_node(cluster: str, name: str, **summary: Any) -> Node:
    node, _token = enroll(cluster, name)
    Node.objects.filter(pk=node.pk).update(**summary)
    return Node.objects.get(pk=node.pk)


def test_a_stranger_is_sent_to_sign_in(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_the_fleet_lists_nodes_grouped_by_cluster_worst_first(client: Any, viewer: Any) -> None:
    add_node("prod-eu", "win-ok", health="ok", health_rank=0)
    add_node("prod-eu", "win-bad", health="critical", health_rank=3, critical_count=1)
    add_node("staging-us", "win-stage", health="warning", health_rank=2, warning_count=2)
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert (
        html.index("Cluster prod-eu") < html.index("win-bad") < html.index("win-ok") < html.index("Cluster staging-us")
    )
    assert 'ws-connect="/ws/fleet/?' in html


@pytest.mark.parametrize(
    ("params", "shown", "hidden"),
    [
        ({"q": "bad"}, "win-bad", "win-ok"),
        ({"cluster": "staging-us"}, "win-stage", "win-bad"),
        ({"severity": "critical"}, "win-bad", "win-stage"),
        ({"check": "flannel.subnet-env-missing"}, "win-bad", "win-ok"),
    ],
)
def test_the_fleet_filters(client: Any, viewer: Any, params: dict[str, str], shown: str, hidden: str) -> None:
    add_node("prod-eu", "win-ok", health="ok", health_rank=0)
    add_node(
        "prod-eu",
        "win-bad",
        health="critical",
        health_rank=3,
        critical_count=1,
        open_checks=" flannel.subnet-env-missing ",
    )
    add_node("staging-us", "win-stage", health="warning", health_rank=2, warning_count=1)
    client.force_login(viewer)
    html = client.get("/", params).content.decode()
    assert f">{shown}<" in html and f">{hidden}<" not in html


def test_the_fleet_is_paginated(client: Any, viewer: Any, settings: Any) -> None:
    settings.WND_FLEET_PAGE_SIZE = 5
    for i in range(12):
        add_node("prod-eu", f"win-{i:02d}")
    client.force_login(viewer)
    first = client.get("/").content.decode()
    third = client.get("/", {"page": "3"}).content.decode()
    assert "Page 1 of 3" in first and ">win-00<" in first and ">win-05<" not in first
    assert ">win-10<" in third and ">win-11<" in third


def test_an_htmx_request_gets_only_the_table(client: Any, viewer: Any) -> None:
    add_node("prod-eu", "win-a")
    client.force_login(viewer)
    html = client.get("/", HTTP_HX_REQUEST="true").content.decode()
    assert html.lstrip().startswith('<section id="fleet-table"')


def test_the_node_page_shows_open_findings_with_fix_steps(client: Any, viewer: Any) -> None:
    node = add_node("prod-eu", "win-a", health="critical", health_rank=3, critical_count=1)
    Finding.objects.create(
        node=node,
        check_id="flannel.subnet-env-missing",
        severity="critical",
        title="subnet.env is missing",
        summary="C:\\run\\flannel\\subnet.env does not exist.",
        fix=["Restart-Service flanneld"],
        evidence=[{"source": "C:\\run\\flannel\\subnet.env", "excerpt": "absent"}],
    )
    Finding.objects.create(
        node=node,
        check_id="hns.network-missing",
        severity="critical",
        title="gone",
        summary="old",
        resolved_at="2026-11-24T00:00:00Z",
    )
    client.force_login(viewer)
    html = client.get("/clusters/prod-eu/nodes/win-a/").content.decode()
    assert "subnet.env is missing" in html and "Restart-Service flanneld" in html
    assert "hns.network-missing" not in html
    assert "Run diagnostics now" not in html  # a viewer cannot


def test_an_unknown_node_is_a_404(client: Any, viewer: Any) -> None:
    client.force_login(viewer)
    assert client.get("/clusters/prod-eu/nodes/nope/").status_code == 404


def test_a_viewer_cannot_run_diagnostics_or_create_tokens(client: Any, viewer: Any) -> None:
    add_node("prod-eu", "win-a")
    client.force_login(viewer)
    assert client.post("/clusters/prod-eu/nodes/win-a/diagnose").status_code == 403
    assert client.post("/clusters/prod-eu/nodes/win-a/tokens").status_code == 403
    assert client.post("/enroll", {"cluster": "x", "node": "y"}).status_code == 403


def test_an_operator_enrolls_a_node_and_sees_its_token_once(client: Any, operator: Any) -> None:
    client.force_login(operator)
    response = client.post("/enroll", {"cluster": "prod-eu", "node": "win-new"})
    assert response.status_code == 201
    html = response.content.decode()
    token = AgentToken.objects.get(node__name="win-new")
    raw = html.split("<pre><code>", 1)[1].split("</code>", 1)[0]
    assert raw.startswith("wnd_") and AgentToken.authenticate(raw) == token
    assert token.token_hash not in html
    assert raw not in client.get("/clusters/prod-eu/nodes/win-new/").content.decode()
    assert Cluster.objects.filter(name="prod-eu").exists()


def test_enrolling_with_a_bad_name_says_why(client: Any, operator: Any) -> None:
    client.force_login(operator)
    response = client.post("/enroll", {"cluster": "prod-eu", "node": "Bad Name!"})
    assert response.status_code == 400
    assert "is not a valid node name" in response.content.decode()
    assert not Node.objects.exists()


def test_an_operator_revokes_a_token(client: Any, operator: Any) -> None:
    _node, raw = enroll("prod-eu", "win-a")
    client.force_login(operator)
    token = AgentToken.objects.get()
    response = client.post(f"/clusters/prod-eu/nodes/win-a/tokens/{token.pk}/revoke")
    assert response.status_code == 302
    assert AgentToken.authenticate(raw) is None


def test_healthz_answers(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_only_operators_get_the_export_selection(client: Any, viewer: Any, operator: Any) -> None:
    add_node("prod-eu", "win-a")
    client.force_login(viewer)
    assert 'form="export-selection"' not in client.get("/").content.decode()
    client.force_login(operator)
    assert 'form="export-selection"' in client.get("/").content.decode()
