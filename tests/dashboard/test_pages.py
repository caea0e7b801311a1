"""The fleet and node pages, for each persona."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from dashboard.models import AgentToken, Cluster, Finding, Node, Report, enroll
from tests.diagnostics.bundle.exports import scenario_report

pytestmark = pytest.mark.django_db


def add_node(cluster: str, name: str, **summary: Any) -> Node:
    node, _token = enroll(cluster, name)
    Node.objects.filter(pk=node.pk).update(**summary)
    return Node.objects.get(pk=node.pk)


def test_a_stranger_is_sent_to_sign_in(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_the_fleet_lists_nodes_worst_first_across_clusters(client: Any, viewer: Any) -> None:
    add_node("a-new", "win-fresh")  # a cluster that sorts first, with a node that has no data yet
    add_node("prod-eu", "win-ok", health="ok", health_rank=0)
    add_node("prod-eu", "win-bad", health="critical", health_rank=3, critical_count=1)
    add_node("staging-us", "win-stage", health="warning", health_rank=2, warning_count=2)
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert html.index(">win-bad<") < html.index(">win-stage<") < html.index(">win-ok<") < html.index(">win-fresh<")
    assert "Cluster prod-eu" not in html  # no grouping unless asked
    assert 'ws-connect="/ws/fleet/?' in html


def test_the_fleet_groups_by_cluster_on_request(client: Any, viewer: Any) -> None:
    add_node("prod-eu", "win-ok", health="ok", health_rank=0)
    add_node("prod-eu", "win-bad", health="critical", health_rank=3, critical_count=1)
    add_node("staging-us", "win-stage", health="warning", health_rank=2, warning_count=2)
    client.force_login(viewer)
    html = client.get("/", {"group": "cluster"}).content.decode()
    order = [html.index(text) for text in ("Cluster prod-eu", ">win-bad<", ">win-ok<", "Cluster staging-us")]
    assert order == sorted(order)


def test_the_fleet_sorts_by_a_column_both_ways(client: Any, viewer: Any) -> None:
    add_node("prod-eu", "win-b")
    add_node("prod-eu", "win-a")
    client.force_login(viewer)
    up = client.get("/", {"sort": "name"}).content.decode()
    down = client.get("/", {"sort": "-name"}).content.decode()
    assert up.index(">win-a<") < up.index(">win-b<") and down.index(">win-b<") < down.index(">win-a<")
    assert 'aria-sort="ascending"' in up and 'aria-sort="descending"' in down


def test_the_fleet_summary_counts_nodes_by_health_then_findings_by_severity(client: Any, viewer: Any) -> None:
    add_node("prod-eu", "win-bad", health="critical", health_rank=3, critical_count=3, warning_count=1)
    add_node("prod-eu", "win-ok", health="ok", health_rank=0)
    client.force_login(viewer)
    html = client.get("/").content.decode()
    nodes = html.split('aria-label="Nodes by health"', 1)[1].split("</div>", 1)[0]
    findings = html.split('aria-label="Open findings by severity"', 1)[1].split("</div>", 1)[0]
    assert 'data-health="critical"><span class="num">1</span>' in nodes
    assert 'data-health="ok"><span class="num">1</span>' in nodes
    assert 'data-severity="critical"><span class="num">3</span>' in findings


def test_a_fleet_row_shows_the_top_finding_and_its_triage_state(client: Any, viewer: Any) -> None:
    from django.utils import timezone

    node = add_node("prod-eu", "win-bad", health="critical", health_rank=3, critical_count=1, warning_count=1)
    Finding.objects.create(node=node, check_id="node.version-skew", severity="warning", title="Skewed", summary="s")
    Finding.objects.create(
        node=node,
        check_id="flannel.subnet-env-missing",
        severity="critical",
        title="subnet.env is missing",
        summary="s",
        acknowledged_at=timezone.now(),
    )
    client.force_login(viewer)
    row = client.get("/").content.decode().split(f'id="node-row-{node.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "subnet.env is missing" in row and "Skewed" not in row
    assert "1 ack" in row


def test_the_heatmap_links_a_cluster_and_area_to_the_filtered_list(client: Any, viewer: Any) -> None:
    add_node("prod-eu", "win-bad", health="critical", health_rank=3, open_checks=" flannel.subnet-env-missing ")
    add_node("prod-eu", "win-hns", health="critical", health_rank=3, open_checks=" hns.network-missing ")
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert 'href="?cluster=prod-eu&amp;area=flannel"' in html
    filtered = client.get("/", {"cluster": "prod-eu", "area": "flannel"}).content.decode()
    table = filtered.split('id="fleet-table"', 1)[1]
    assert ">win-bad<" in table and ">win-hns<" not in table


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


def test_a_finding_another_one_explains_is_nested_under_its_cause(client: Any, viewer: Any) -> None:
    # The cause table says a missing load-balancer policy explains a Service VIP unreachable from
    # the node; stored findings carry no cause, the page derives it from the open set.
    node = add_node("prod-eu", "win-a", health="critical", health_rank=3, critical_count=2)
    for check_id, title in [("network.service-vip-from-node", "VIP unreachable"), ("hns.lb-policy-missing", "No LB")]:
        Finding.objects.create(node=node, check_id=check_id, severity="critical", title=title, summary="s")
    client.force_login(viewer)
    html = client.get("/clusters/prod-eu/nodes/win-a/").content.decode()
    caused = html.index('aria-label="Caused by hns.lb-policy-missing"')
    assert html.index('data-group="hns.lb-policy-missing"') < caused < html.index("VIP unreachable")
    assert "Because of" in html


def test_the_node_page_says_which_network_plugin_the_node_runs(client: Any, viewer: Any) -> None:
    node = add_node("prod-eu", "win-prod-02")
    document = scenario_report("subnet-env-missing")  # a flannel node (flanneld service and files)
    Report.objects.create(
        node=node,
        collected_at="2026-11-24T10:15:40Z",
        agent_version="0.1.0",
        payload=Report.pack(json.dumps(document).encode()),
    )
    client.force_login(viewer)
    html = client.get("/clusters/prod-eu/nodes/win-prod-02/").content.decode()
    assert re.search(r"Network plugin</dt>\s*<dd>flannel", html), "the plugin is among the node's facts"


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
    assert response.status_code == 302 and response["Location"] == "/clusters/prod-eu/nodes/win-new/#admin"
    html = client.get("/clusters/prod-eu/nodes/win-new/").content.decode()
    token = AgentToken.objects.get(node__name="win-new")
    raw = html.split("<pre><code>", 1)[1].split("</code>", 1)[0]
    assert raw.startswith("wnd_") and AgentToken.authenticate(raw) == token
    assert token.token_hash not in html
    assert f"-Dashboard http://testserver -Cluster prod-eu -Token {raw}" in html
    assert "kubectl apply -k deploy/kubernetes/overlays/production" in html  # DaemonSet agents need no token
    reloaded = client.get("/clusters/prod-eu/nodes/win-new/").content.decode()
    assert raw not in reloaded and AgentToken.objects.count() == 1  # a reload mints nothing
    assert Cluster.objects.filter(name="prod-eu").exists()


def test_enrolling_a_node_that_has_active_tokens_warns(client: Any, operator: Any) -> None:
    enroll("prod-eu", "win-a")
    client.force_login(operator)
    response = client.post("/enroll", {"cluster": "prod-eu", "node": "win-a"}, follow=True)
    html = response.content.decode()
    assert "already enrolled and still has 1 active token" in html
    assert "2 active tokens" in html


def test_an_operator_removes_a_node_with_its_tokens(client: Any, operator: Any) -> None:
    _node, raw = enroll("prod-eu", "win-a")
    client.force_login(operator)
    response = client.post("/clusters/prod-eu/nodes/win-a/remove")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Node.objects.filter(name="win-a").exists()
    assert AgentToken.authenticate(raw) is None


def test_a_viewer_cannot_remove_a_node(client: Any, viewer: Any) -> None:
    enroll("prod-eu", "win-a")
    client.force_login(viewer)
    assert client.post("/clusters/prod-eu/nodes/win-a/remove").status_code == 403
    assert Node.objects.filter(name="win-a").exists()


def test_a_node_without_a_report_says_so(client: Any, viewer: Any) -> None:
    enroll("prod-eu", "win-a")
    client.force_login(viewer)
    html = client.get("/clusters/prod-eu/nodes/win-a/").content.decode()
    assert "No report yet" in html and "every check passed" not in html
    assert "waiting for its first report" in html


def test_a_node_whose_tokens_are_all_revoked_says_reports_are_refused(client: Any, viewer: Any) -> None:
    from django.utils import timezone

    enroll("prod-eu", "win-a")
    AgentToken.objects.update(revoked_at=timezone.now())
    client.force_login(viewer)
    html = client.get("/clusters/prod-eu/nodes/win-a/").content.decode()
    assert "reports refused: every token revoked" in html


def test_the_favicon_is_served(client: Any) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


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
    assert response.status_code == 302 and response["Location"].endswith("#admin")
    assert AgentToken.authenticate(raw) is None


def test_healthz_answers(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_only_operators_get_the_export_selection(client: Any, viewer: Any, operator: Any) -> None:
    add_node("prod-eu", "win-a")
    client.force_login(viewer)
    assert 'form="export-selection"' not in client.get("/").content.decode()
    client.force_login(operator)
    assert 'form="export-selection"' in client.get("/").content.decode()
