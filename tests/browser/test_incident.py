"""The dashboard during an incident, in a real Chromium: live updates that leave the reader
alone, errors shown where the user acted, the whole fleet worst first, and tests from the
node that say whether a failure is expected on Windows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from dashboard.models import Node, enroll
from dashboard.server.embedded import python
from tests.dashboard.reports import make_report
from tests.integration.live import post
from tests.stack import Stack

pytestmark = pytest.mark.browser
SCENARIOS = Path(__file__).resolve().parents[2] / "agent" / "scenarios"


def make_user(name: str, group: str) -> User:
    user = User.objects.create_user(name, password=f"{name}-password")
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def live(page: Page, path: str) -> None:
    page.goto(path)
    expect(page.locator("#live-status")).to_have_text("Live")


# -- 1. live updates keep what the user is doing --------------------------------------------


def test_an_update_keeps_open_evidence_a_typed_note_and_the_focus(stack: Stack, signed_in: Any) -> None:
    _node, token = enroll("prod-eu", "win-node-01")
    assert post(stack.url, token, make_report(subnet_env=None))[0] == 202
    page = signed_in(make_user("olga", "operator"))
    live(page, "/clusters/prod-eu/nodes/win-node-01/")
    page.evaluate("window.__sameDocument = true")

    card = page.locator("#node-findings article[data-check='flannel.subnet-env-missing']")
    card.locator("summary").first.click()
    card.get_by_text("Evidence (").click()
    card.get_by_text("Acknowledge or silence").click()
    note = card.locator("input[name='note']").first
    note.fill("on it: INC-4711")
    expect(card).to_contain_text("seen 1 time")

    assert post(stack.url, token, make_report(subnet_env=None))[0] == 202  # the next report, same fault
    expect(card).to_contain_text("seen 2 times", timeout=20_000)

    expect(card.locator("details.finding-body")).to_have_attribute("open", "")
    expect(card.locator("details.evidence-block")).to_have_attribute("open", "")
    expect(card.locator("details.finding-manage")).to_have_attribute("open", "")
    expect(note).to_have_value("on it: INC-4711")
    assert page.evaluate("document.activeElement && document.activeElement.name") == "note"
    assert page.evaluate("window.__sameDocument") is True


# -- 2. every error where the user acted ---------------------------------------------------------


def test_the_diagnose_page_shows_errors_in_the_form_that_was_used(stack: Stack, signed_in: Any) -> None:
    page = signed_in(make_user("dana", "viewer"))
    page.goto("/diagnose")
    paste = page.locator("form:has(textarea[name='text'])")
    paste.locator("textarea").fill("   \n ")
    paste.get_by_role("button", name="Analyze the text").click()
    expect(paste.locator("[data-form-error]")).to_be_visible()
    expect(paste.locator("[data-form-error]")).not_to_be_empty()
    expect(paste.locator("[data-form-error]")).to_contain_text("empty")

    upload = page.locator("form:has(input[type='file'])")
    upload.locator("input[type='file']").set_input_files(
        {"name": "notes.zip", "mimeType": "application/zip", "buffer": b"this is not a zip archive"}
    )
    upload.get_by_role("button", name="Analyze the bundle").click()
    expect(upload.locator("[data-form-error]")).to_be_visible()
    expect(upload.locator("[data-form-error]")).not_to_be_empty()


@pytest.mark.parametrize(
    ("form", "fields", "message"),
    [
        ("#form-ping-vs-curl", {"target": "not a host!"}, "target"),
        ("#form-nodeport", {"port": "80"}, "port"),
        ("#form-service-vip", {"service": "not-an-ip", "port": "443"}, "neither a Service"),
        ("#form-dns-lookup", {"names": "bad_name!"}, "names"),
    ],
)
def test_each_test_form_shows_its_own_error(
    stack: Stack, signed_in: Any, form: str, fields: dict[str, str], message: str
) -> None:
    enroll("prod-eu", "win-node-02")
    page = signed_in(make_user("omar", "operator"))
    live(page, "/clusters/prod-eu/nodes/win-node-02/")
    target = page.locator(form)
    for name, value in fields.items():
        target.locator(f"[name='{name}']").fill(value)
    target.get_by_role("button").click()
    expect(target.locator("[data-form-error]")).to_contain_text(message)
    for other in ("#form-ping-vs-curl", "#form-nodeport", "#form-service-vip", "#form-dns-lookup"):
        if other != form:
            expect(page.locator(f"{other} [data-form-error]")).to_have_count(0)


def test_a_test_sent_to_a_disconnected_agent_says_so_beside_its_form(stack: Stack, signed_in: Any) -> None:
    enroll("prod-eu", "win-node-02")
    page = signed_in(make_user("omar", "operator"))
    live(page, "/clusters/prod-eu/nodes/win-node-02/")
    page.locator("#form-collect-now").get_by_role("button").click()
    expect(page.locator("#test-collect-now .test-results")).to_contain_text("not connected", timeout=10_000)
    expect(page.locator("#test-collect-now .test-results")).to_contain_text("by omar")


def test_schedule_channel_and_enrollment_forms_show_their_errors(stack: Stack, signed_in: Any) -> None:
    page = signed_in(make_user("omar", "operator"))

    page.goto("/schedules")
    form = page.locator("#new-schedule form")
    form.locator("[name='name']").fill("nightly")
    form.locator("[name='checks']").fill("no-such.check")
    form.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#new-schedule .error").first).to_contain_text("no-such.check")
    expect(page.locator("#new-schedule .error").first).to_be_in_viewport()

    page.goto("/notifications")
    form = page.locator("#new-channel form")
    form.locator("[name='name']").fill("ops")
    form.locator("[name='target']").fill("not a url")
    form.locator("[name='kind']").select_option("webhook")
    form.get_by_role("button", name="Add channel").click()
    expect(page.locator("#new-channel .error").first).to_contain_text("http:// or https://")
    expect(page.locator("#new-channel .error").first).to_be_in_viewport()

    page.goto("/")
    form = page.locator("#enroll form")
    form.get_by_label("Cluster").fill("prod-eu")
    form.get_by_label("Node name").fill("win-")
    form.get_by_role("button", name="Enroll").click()
    expect(page.locator("#enroll [data-form-error]")).to_contain_text("is not a valid node name")
    expect(page.locator("#enroll [data-form-error]")).to_be_in_viewport()
    assert not Node.objects.filter(name="win-").exists()


# -- 4. the whole fleet, worst first ---------------------------------------------------------------


def test_the_fleet_is_worst_first_across_clusters_and_filters_as_you_change_them(stack: Stack, signed_in: Any) -> None:
    for i in range(23):  # newly enrolled, no data yet, in a cluster whose name sorts first
        enroll("a-lab", f"win-new-{i:02d}")
    bad, _ = enroll("prod-eu", "win-prod-07")
    Node.objects.filter(pk=bad.pk).update(
        health="critical", health_rank=3, critical_count=2, open_checks=" hns.network-missing "
    )
    warn, _ = enroll("staging-us", "win-stage-01")
    Node.objects.filter(pk=warn.pk).update(health="warning", health_rank=2, warning_count=1)

    page = signed_in(make_user("vera", "viewer"))
    live(page, "/")
    rows = page.locator("#fleet-table tbody tr[id^='node-row-']")
    expect(rows.nth(0)).to_contain_text("win-prod-07")
    expect(rows.nth(1)).to_contain_text("win-stage-01")
    expect(page.locator("#fleet-summary [data-health='critical'] .num")).to_have_text("1")
    expect(page.locator("#fleet-summary [data-health='unknown'] .num")).to_have_text("23")

    page.locator("select[name='severity']").select_option("warning")
    expect(page).to_have_url(re.compile(r"severity=warning"))
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("win-stage-01")

    live(page, "/")
    page.locator("#fleet-heatmap tr[data-cluster='prod-eu'] td[data-area='hns'] a").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("win-prod-07")


# -- 7. tests from the node that say what a failure means ----------------------------------------


@pytest.fixture
def agent_process(tmp_path: Path) -> Iterator[Callable[[str, str, str], None]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(scenario_name: str, url: str, token: str) -> None:
        shutil.copytree(SCENARIOS / scenario_name, tmp_path / "scenario")
        argv = [python(), "-m", "agent", "--scenario", str(tmp_path / "scenario" / "scenario.json")]
        argv += ["--dashboard", url, "--token", token, "--interval", "5", "--state-dir", str(tmp_path / "state")]
        started.append(subprocess.Popen([*argv, "--log-level", "WARNING"]))

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def test_results_say_whether_a_failure_is_expected_on_windows(
    stack: Stack, signed_in: Any, agent_process: Callable[[str, str, str], None]
) -> None:
    doc = json.loads((SCENARIOS / "cbr0-network-missing" / "scenario.json").read_text())
    _node, token = enroll(doc["cluster"], doc["node"])
    agent_process("cbr0-network-missing", stack.url, token)
    page = signed_in(make_user("omar", "operator"))
    live(page, f"/clusters/{doc['cluster']}/nodes/{doc['node']}/")
    expect(page.locator("#node-head [data-agent-state]")).to_have_text("connected", timeout=30_000)

    nodeport = page.locator("#test-nodeport")
    nodeport.get_by_label("NodePort").fill("30080")
    nodeport.get_by_role("button", name="Run").click()
    result = nodeport.locator(".verdict[data-kind='nodeport']")
    expect(result).to_have_attribute("data-verdict", "expected", timeout=30_000)
    expect(result).to_contain_text("expected on Windows")
    expect(nodeport.locator(".test-run .meta").first).to_contain_text("by omar")
    expect(nodeport.locator(".test-run time").first).to_contain_text("UTC")

    dns = page.locator("#test-dns-lookup")
    dns.get_by_role("button", name="Run").click()
    fqdn = dns.locator(".verdict[data-kind='dns']").first
    expect(fqdn).to_have_attribute("data-verdict", "problem", timeout=30_000)  # no HNS network: no cluster DNS

    vip = page.locator("#test-service-vip")
    vip.get_by_label("ClusterIP").fill("10.96.0.1")
    vip.get_by_label("Port").fill("443")
    vip.get_by_role("button", name="Run").click()
    vip_result = vip.locator(".verdict[data-kind='service-vip']")
    expect(vip_result).to_have_attribute("data-verdict", "problem", timeout=30_000)


# -- 3. revocation is honest at once ------------------------------------------------------------


def test_revoking_the_last_token_asks_first_then_says_reports_are_refused(
    stack: Stack, signed_in: Any, agent_process: Callable[[str, str, str], None]
) -> None:
    doc = json.loads((SCENARIOS / "healthy" / "scenario.json").read_text())
    _node, token = enroll(doc["cluster"], doc["node"])
    agent_process("healthy", stack.url, token)
    page = signed_in(make_user("omar", "operator"))
    live(page, f"/clusters/{doc['cluster']}/nodes/{doc['node']}/")
    state = page.locator("#node-head [data-agent-state]")
    expect(state).to_have_text("connected", timeout=30_000)

    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Revoke").click()
    expect(state).to_have_text("connected")  # dismissed: nothing happened
    assert questions and "Revoke token" in questions[0]

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(state).to_have_text("reports refused: every token revoked")
    assert post(stack.url, token, make_report(cluster=doc["cluster"], node=doc["node"]))[0] == 401
