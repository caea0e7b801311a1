"""What an SRE sees live, in a real Chromium: findings appear and resolve without a reload."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Browser, expect

from dashboard.models import enroll
from tests.dashboard.reports import make_report
from tests.integration.live import post
from tests.stack import Stack

pytestmark = pytest.mark.browser


def make_user(name: str, group: str) -> User:
    user = User.objects.create_user(name, password=f"{name}-password")
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def test_a_fault_appears_and_then_resolves_without_a_reload(stack: Stack, signed_in: Any) -> None:
    _node, token = enroll("prod-eu", "win-node-01")
    page = signed_in(make_user("vera", "viewer"))
    page.goto("/clusters/prod-eu/nodes/win-node-01/")
    expect(page.locator("#live-status")).to_have_text("Live")
    page.evaluate("window.__sameDocument = true")

    assert post(stack.url, token, make_report(subnet_env=None))[0] == 202
    finding = page.locator("#node-findings article[data-check='flannel.subnet-env-missing']")
    expect(finding).to_be_visible(timeout=20_000)
    expect(page.locator("#node-head h1 .badge")).to_have_text("Critical")

    assert post(stack.url, token, make_report())[0] == 202
    expect(finding).to_have_count(0, timeout=20_000)
    expect(page.locator("#node-findings")).to_contain_text("No open findings")
    assert page.evaluate("window.__sameDocument") is True


def test_run_diagnostics_now_shows_progress_and_streams_findings(stack: Stack, signed_in: Any) -> None:
    _node, token = enroll("prod-eu", "win-node-03")
    assert post(stack.url, token, make_report(node="win-node-03", subnet_env=None))[0] == 202
    page = signed_in(make_user("omar", "operator"))
    page.goto("/clusters/prod-eu/nodes/win-node-03/")
    expect(page.locator("#live-status")).to_have_text("Live")
    page.get_by_role("button", name="Run diagnostics now").click()
    expect(page.locator("#run-status")).to_contain_text("Finished", timeout=30_000)
    expect(page.locator("#run-stream")).to_contain_text("flannel.subnet-env-missing")
    expect(page.locator("#run-status progress")).to_have_attribute("value", "100")


def test_a_viewer_sees_no_operator_controls(stack: Stack, signed_in: Any) -> None:
    enroll("prod-eu", "win-node-04")
    page = signed_in(make_user("val", "viewer"))
    page.goto("/clusters/prod-eu/nodes/win-node-04/")
    expect(page.get_by_role("heading", name="win-node-04")).to_be_visible()
    expect(page.get_by_role("button", name="Run diagnostics now")).to_have_count(0)


def test_signing_in_leads_to_the_fleet_which_groups_by_cluster_on_request(browser: Browser, stack: Stack) -> None:
    enroll("prod-eu", "win-node-05")
    enroll("staging-us", "win-node-06")
    make_user("sam", "viewer")
    context = browser.new_context(base_url=stack.url)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("User name").fill("sam")
    page.get_by_label("Password").fill("sam-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Fleet")).to_be_visible()
    page.get_by_label("Group by cluster").check()
    expect(page.get_by_role("rowheader", name="Cluster prod-eu")).to_be_visible()
    expect(page.get_by_role("rowheader", name="Cluster staging-us")).to_be_visible()
    context.close()
