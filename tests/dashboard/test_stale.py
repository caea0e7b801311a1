"""Stale agents: the node.agent-stale finding opens when reports stop and resolves when they resume."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from dashboard.diagnosis import reconcile
from dashboard.models import Finding, Node, enroll
from dashboard.stale import STALE_CHECK, check_stale_agents

pytestmark = pytest.mark.django_db


def reported(node: Node, ago: timedelta) -> None:
    Node.objects.filter(pk=node.pk).update(last_report_at=timezone.now() - ago)


def test_a_quiet_agent_gets_a_stale_finding_once_and_recovers_when_it_reports(settings: Any) -> None:
    settings.WND_AGENT_STALE_AFTER = 300
    quiet = enroll("prod-eu", "win-quiet")[0]
    chatty = enroll("prod-eu", "win-chatty")[0]
    enroll("prod-eu", "win-never")  # no agent yet: nothing to be stale about
    reported(quiet, timedelta(minutes=6))
    reported(chatty, timedelta(seconds=20))
    assert check_stale_agents() == (1, 0)
    assert check_stale_agents() == (0, 0)  # still quiet: nothing new
    finding = Finding.objects.get(check_id=STALE_CHECK)
    assert finding.node == quiet and finding.severity == "warning" and "WND_AGENT_STALE_AFTER" in finding.summary
    node = Node.objects.get(pk=quiet.pk)
    assert node.health == "warning" and STALE_CHECK in node.open_check_ids

    reconcile(node, [])  # the report path does not resolve it: only fresh reports do
    reported(quiet, timedelta(seconds=1))
    assert check_stale_agents() == (0, 1)
    assert not Finding.objects.get(check_id=STALE_CHECK).is_open
    assert Node.objects.get(pk=quiet.pk).health == "ok"


def test_the_fleet_filter_knows_the_stale_check(client: Any, viewer: Any) -> None:
    client.force_login(viewer)
    assert STALE_CHECK in client.get("/").context["checks"]
