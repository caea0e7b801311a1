"""Stored reports keep only the machine environment variables the checks need, credentials redacted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dashboard.models import Report
from dashboard.server.retention import keep_environment, strip_report
from tests.dashboard.reports import make_report

LEAKY_ENV = {
    "KUBE_NETWORK": "cbr0",
    "HTTPS_PROXY": "http://svc-proxy:Pr0xy%21Pa55@proxy.corp.example:3128",
    "NO_PROXY": "10.0.0.0/8,.svc",
    "Path": "C:\\Windows\\system32;C:\\k",
    "NUMBER_OF_PROCESSORS": "4",
    "DB_PASSWORD": "Sup3r-S3cret!",
    "ACR_REGISTRY_AUTH": "c3ZjLXB1bGw6Umc3IXRRMndacA==",
    "GH_PAT": "ghp_tUz5DnKOWurTWb8fiLmFbNDJHcImyme6zzeV",
    "CUSTOM_SETTING": "anything an administrator set",
}


def with_env(env: dict[str, str]) -> dict[str, Any]:
    report = make_report()
    report.setdefault("probes", {})["env.machine"] = {"output": json.dumps(env, indent=4), "error": None}
    return report


def test_only_allowed_variables_are_kept_with_their_credentials_redacted() -> None:
    kept = keep_environment(LEAKY_ENV)
    assert set(kept) == {"KUBE_NETWORK", "HTTPS_PROXY", "NO_PROXY", "Path", "NUMBER_OF_PROCESSORS"}
    assert kept["HTTPS_PROXY"] == "http://svc-proxy:REDACTED@proxy.corp.example:3128"
    assert kept["KUBE_NETWORK"] == "cbr0"


def test_a_report_without_extra_variables_is_left_as_sent() -> None:
    report = with_env({"KUBE_NETWORK": "cbr0", "OS": "Windows_NT"})
    assert strip_report(report) is False


@pytest.mark.django_db
def test_an_ingested_report_is_stored_without_the_variables_no_check_needs(post_report: Any) -> None:
    response = post_report(with_env(LEAKY_ENV), gzipped=True)
    assert response.status_code == 202, response.content
    stored = Report.objects.get().document()
    env = json.loads(stored["probes"]["env.machine"]["output"])
    assert "DB_PASSWORD" not in env and "GH_PAT" not in env and "ACR_REGISTRY_AUTH" not in env
    assert env["KUBE_NETWORK"] == "cbr0"
    raw = json.dumps(stored)
    assert "Sup3r-S3cret!" not in raw and "Pr0xy%21Pa55" not in raw
