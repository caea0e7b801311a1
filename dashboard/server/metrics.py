"""``GET /metrics``: the Prometheus text exposition format (version 0.0.4), written by hand.

Every value is read from the database when scraped (a few grouped queries), so any web
process answers the same and nothing is kept in memory; that is why there is no client
library. Gauges only: a count of stored rows would drop when old rows are pruned, which
a Prometheus counter must never do.

Access: ``Authorization: Bearer <WND_METRICS_TOKEN>`` (Prometheus ``authorization`` /
``bearer_token_file``), or a signed-in user of the dashboard.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashboard.models import Finding, Node, Report
from dashboard.monitoring import Delivery, Schedule, ScheduleRun
from dashboard.schedules import last_runs

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Exposition:
    """Families in order, each with its HELP and TYPE lines once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, Any], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        self.lines.extend(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render() -> str:
    now = timezone.now()
    out = Exposition()
    open_rows = (
        Finding.objects.filter(resolved_at__isnull=True)
        .values("node__cluster__name", "node__name", "check_id", "severity", "status")
        .annotate(n=Count("id"))
        .order_by("node__cluster__name", "node__name", "check_id", "severity", "status")
    )
    out.family(
        "wnd_findings_open",
        "gauge",
        "Open findings by cluster, node, check, severity and status (fail, or unknown for lack of data).",
        (
            (
                {
                    "cluster": r["node__cluster__name"],
                    "node": r["node__name"],
                    "check": r["check_id"],
                    "severity": r["severity"],
                    "status": r["status"],
                },
                r["n"],
            )
            for r in open_rows
        ),
    )
    nodes = list(Node.objects.values_list("cluster__name", "name", "health", "last_report_at").order_by("pk"))
    delivery = list(Node.objects.values_list("cluster__name", "name", "duplicate_reports").order_by("pk"))
    out.family(
        "wnd_node_health",
        "gauge",
        "1 for each node's current health (critical, warning, info, ok, unknown).",
        (({"cluster": c, "node": n, "health": h}, 1) for c, n, h, _at in nodes),
    )
    out.family(
        "wnd_agent_report_age_seconds",
        "gauge",
        "Seconds since the node's agent last reported (nodes that never reported are absent).",
        (({"cluster": c, "node": n}, round((now - at).total_seconds(), 3)) for c, n, _h, at in nodes if at),
    )
    out.family(
        "wnd_agent_duplicate_reports",
        "gauge",
        "Reports the node's agent sent again after they were stored (answered as duplicates, not stored twice).",
        (({"cluster": c, "node": n}, d) for c, n, d in delivery),
    )
    out.family(
        "wnd_reports_undiagnosed",
        "gauge",
        "Stored reports whose diagnosis is still owed (queued, running, or waiting for the sweeper).",
        [({}, Report.objects.filter(diagnosed_at__isnull=True).count())],
    )
    schedules = list(Schedule.objects.all())
    runs = last_runs(schedules)
    finished = {s.pk: runs[s.pk] for s in schedules if s.pk in runs and runs[s.pk].finished_at is not None}
    out.family(
        "wnd_schedule_enabled",
        "gauge",
        "1 when the schedule is enabled, 0 when paused.",
        (({"schedule": s.name}, int(s.enabled)) for s in schedules),
    )
    out.family(
        "wnd_schedule_last_run_duration_seconds",
        "gauge",
        "Duration of the schedule's last finished run.",
        (({"schedule": s.name}, finished[s.pk].duration_seconds or 0) for s in schedules if s.pk in finished),
    )
    out.family(
        "wnd_schedule_last_run_timestamp_seconds",
        "gauge",
        "When the schedule's last run finished (Unix time).",
        (
            ({"schedule": s.name, "state": finished[s.pk].state}, finished[s.pk].finished_at.timestamp())  # type: ignore[union-attr]
            for s in schedules
            if s.pk in finished
        ),
    )
    names = {s.pk: s.name for s in schedules}
    states = ScheduleRun.objects.values("schedule_id", "state").annotate(n=Count("id")).order_by("schedule_id", "state")
    out.family(
        "wnd_schedule_runs",
        "gauge",
        "Runs kept in the schedule's history, by outcome (ok, failed, skipped, interrupted, running).",
        (({"schedule": names.get(r["schedule_id"], ""), "state": r["state"]}, r["n"]) for r in states),
    )
    deliveries = Delivery.objects.values("channel__name", "state").annotate(n=Count("id")).order_by("channel__name")
    out.family(
        "wnd_notification_deliveries",
        "gauge",
        "Notification deliveries in the log, by channel and state (pending, sending, sent, failed).",
        (({"channel": r["channel__name"], "state": r["state"]}, r["n"]) for r in deliveries),
    )
    return out.text()


def _authorized(request: HttpRequest) -> bool:
    token = settings.WND_METRICS_TOKEN
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
        return True
    return bool(request.user.is_authenticated)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse(
            "metrics need 'Authorization: Bearer <WND_METRICS_TOKEN>' or a signed-in user\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE)
