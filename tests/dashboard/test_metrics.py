"""/metrics: the Prometheus text format, behind a bearer token."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dashboard import schedules
from dashboard.diagnosis import reconcile
from dashboard.models import Node, enroll
from dashboard.monitoring import Schedule
from tests.dashboard.test_lifecycle import failing
from tests.dashboard.test_schedules import store_report

pytestmark = pytest.mark.django_db

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


def test_metrics_need_the_token_or_a_signed_in_user(client: Any, settings: Any, viewer: Any) -> None:
    settings.WND_METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 200
    client.force_login(viewer)
    assert client.get("/metrics").status_code == 200


def test_metrics_show_open_findings_report_age_and_run_durations(client: Any, settings: Any) -> None:
    settings.WND_METRICS_TOKEN = "t"
    node = enroll("prod-eu", "win-node-01")[0]
    store_report(node, subnet_env=None)
    reconcile(Node.objects.get(pk=node.pk), [failing(), failing("hns.endpoint-state", subject="ep-1")])
    schedules.run_schedule(Schedule.objects.get(name=schedules.DEFAULT_NAME).pk)
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t")
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    assert (
        'wnd_findings_open{cluster="prod-eu",node="win-node-01",check="flannel.subnet-env-missing",'
        'severity="critical",status="fail"} 1' in text
    )
    assert re.search(r'wnd_agent_report_age_seconds\{cluster="prod-eu",node="win-node-01"\} [0-9.]+', text)
    assert re.search(
        r'wnd_schedule_last_run_duration_seconds\{schedule="Every Windows node, all checks"\} [0-9.e-]+', text
    )
    assert 'wnd_schedule_runs{schedule="Every Windows node, all checks",state="ok"} 1' in text
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
