"""Ingest -> diagnose (real Celery worker) -> broadcast (real Redis) -> WebSocket frame."""

from __future__ import annotations

import time

import pytest

from dashboard.models import Finding, Node, enroll
from tests.dashboard.reports import make_report
from tests.integration.live import open_socket, post, wait_for_frame
from tests.stack import Stack

pytestmark = pytest.mark.integration


def test_a_fault_in_a_report_reaches_the_node_page_and_its_fix_resolves_it(stack: Stack) -> None:
    _node, token = enroll("prod-eu", "win-node-01")
    with open_socket(stack.url, "/ws/clusters/prod-eu/nodes/win-node-01/") as socket:
        wait_for_frame(socket, 'id="node-findings"')  # the current state on connect

        status, body = post(stack.url, token, make_report(subnet_env=None))
        assert status == 202, body
        frame = wait_for_frame(socket, "flannel.subnet-env-missing")
        assert 'hx-swap-oob="morph"' in frame

        status, body = post(stack.url, token, make_report())
        assert status == 202, body
        wait_for_frame(socket, "No open findings", absent='data-check="flannel.subnet-env-missing"')

    finding = Finding.objects.get(check_id="flannel.subnet-env-missing")
    assert finding.resolved_at is not None
    assert Node.objects.get().health == "ok"


def test_the_fleet_page_hears_about_every_node_change(stack: Stack) -> None:
    _node, token = enroll("staging-us", "win-node-07")
    with open_socket(stack.url, "/ws/fleet/") as socket:
        wait_for_frame(socket, 'id="fleet-table"')
        assert post(stack.url, token, make_report(cluster="staging-us", node="win-node-07", subnet_env=None))[0] == 202
        frame = wait_for_frame(socket, "flannel.subnet-env-missing")
        assert "win-node-07" in frame and "staging-us" in frame


def test_an_anonymous_socket_is_refused(stack: Stack) -> None:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    url = stack.url.replace("http", "ws") + "/ws/fleet/"
    with pytest.raises((ConnectionClosed, InvalidStatus)), connect(url, additional_headers={"Origin": stack.url}) as ws:
        ws.recv(timeout=5)
    # ...and leaves nothing behind: the server stops at once (it waited for the refused socket until killed).
    started = time.monotonic()
    stack.stop_web()
    assert time.monotonic() - started < 5


def test_reports_of_one_node_are_diagnosed_in_order(stack: Stack) -> None:
    node, token = enroll("prod-eu", "win-node-02")
    last = 0
    for missing in (True, False, True):
        report = make_report(node="win-node-02", subnet_env=None if missing else "FLANNEL_SUBNET=10.244.9.1/24\n")
        status, body = post(stack.url, token, report)
        assert status == 202, body
        last = body["report"]
    deadline = time.monotonic() + 30
    while Node.objects.get(pk=node.pk).last_diagnosed_report_id != last and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # let the transaction of the last diagnosis commit
    assert Finding.objects.filter(check_id="flannel.subnet-env-missing", resolved_at__isnull=True).count() == 1
