"""Schedules: what they cover, their beat entries, one run, overlapping runs, and the pages."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from dashboard import schedules
from dashboard.beat import DatabaseScheduler
from dashboard.celery import app as celery_app
from dashboard.cluster.models import ApiObject
from dashboard.models import Cluster, Finding, Node, Report, enroll
from dashboard.monitoring import Schedule, ScheduleRun
from tests.dashboard.reports import make_report

pytestmark = pytest.mark.django_db

SUBNET = "flannel.subnet-env-missing"


def store_report(node: Node, **overrides: Any) -> Report:
    """A report as ingest stores it (the node's latest)."""
    doc = make_report(cluster=node.cluster.name, node=node.name, **overrides)
    now = timezone.now()
    Node.objects.filter(pk=node.pk).update(last_report_at=now)
    payload = Report.pack(json.dumps(doc).encode())
    return Report.objects.create(node=node, received_at=now, collected_at=now, agent_version="0.1.0", payload=payload)


def make_schedule(**fields: Any) -> Schedule:
    schedule = Schedule.objects.create(**{"name": "nightly", "interval_seconds": 60, **fields})
    schedules.sync_periodic_task(schedule)
    return schedule


def api_node(cluster: str, name: str, labels: dict[str, str]) -> None:
    data = {"kind": "Node", "metadata": {"name": name, "labels": labels}}
    ApiObject.objects.create(
        cluster=Cluster.objects.get_or_create(name=cluster)[0], kind="Node", name=name, windows=True, data=data
    )


def test_a_default_schedule_and_the_maintenance_task_exist_after_install() -> None:
    default = Schedule.objects.get(name=schedules.DEFAULT_NAME)
    assert default.enabled and default.nodes == "all" and default.checks == ""
    assert default.periodic_task is not None
    assert default.periodic_task.task == "dashboard.run_schedule"
    assert json.loads(default.periodic_task.args) == [default.pk]
    assert default.periodic_task.interval.every == schedules.DEFAULT_EVERY
    assert PeriodicTask.objects.get(name=schedules.MAINTENANCE_NAME).task == "dashboard.maintenance"


def test_a_schedule_becomes_a_beat_entry_that_follows_its_changes() -> None:
    schedule = make_schedule(interval_seconds=90)
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert (task.interval.every, task.interval.period, task.crontab) == (90, "seconds", None)
    schedule.cron, schedule.interval_seconds, schedule.enabled = "*/30 2-4 * * 1-5", None, False
    schedule.save()
    schedules.sync_periodic_task(schedule)
    task.refresh_from_db()
    assert task.interval is None and not task.enabled
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("*/30", "2-4", "1-5")
    schedules.delete_schedule(schedule)
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


@pytest.mark.django_db(transaction=True)  # the scheduler commits and closes connections as beat does
def test_beat_runs_a_schedule_made_after_it_loaded_its_entries_and_before_its_first_check() -> None:
    # Measured with django-celery-beat's own scheduler: the first check only records the change
    # time, so a schedule made in that window never ran until something else changed.
    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    assert scheduler.schedule  # beat started and loaded its entries
    schedule = make_schedule(name="made while beat starts")
    assert f"wnd schedule {schedule.pk}" in scheduler.schedule  # its first check for changes


@pytest.mark.parametrize("expression", ["* * *", "61 * * * *", "* * * * funday"])
def test_a_bad_cron_expression_is_refused_with_a_reason(expression: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        schedules.validate_cron(expression)


def test_checks_are_chosen_by_id_or_area() -> None:
    chosen = schedules.resolve_checks(["flannel", "hns.network-missing"])
    assert SUBNET in chosen and "hns.network-missing" in chosen and "hns.endpoint-state" not in chosen
    with pytest.raises(ValueError, match="unknown check id or area: nope"):
        schedules.resolve_checks(["nope"])


def test_nodes_are_chosen_all_by_name_or_by_label_selector() -> None:
    a = enroll("prod-eu", "win-a")[0]
    b = enroll("prod-eu", "win-b")[0]
    c = enroll("staging-us", "win-a")[0]
    api_node("prod-eu", "win-a", {"kubernetes.io/os": "windows", "pool": "gpu"})
    api_node("prod-eu", "win-b", {"kubernetes.io/os": "windows", "pool": "general"})
    api_node("staging-us", "win-a", {"kubernetes.io/os": "windows"})
    everything = schedules.target_node_ids(Schedule(nodes="all"))
    assert {a.pk, b.pk, c.pk} <= set(everything)
    assert schedules.target_node_ids(Schedule(nodes="names", node_names="prod-eu/win-a\nwin-b")) == [a.pk, b.pk]
    assert schedules.target_node_ids(Schedule(nodes="names", node_names="win-a")) == [a.pk, c.pk]
    assert schedules.target_node_ids(Schedule(nodes="selector", label_selector="pool in (gpu)")) == [a.pk]
    assert schedules.target_node_ids(Schedule(nodes="selector", label_selector="!pool")) == [c.pk]
    assert schedules.target_node_ids(Schedule(nodes="selector", label_selector="pool!=gpu")) == [b.pk, c.pk]


def test_a_run_checks_every_node_and_records_its_duration_and_outcome() -> None:
    broken = enroll("prod-eu", "win-broken")[0]
    healthy = enroll("prod-eu", "win-healthy")[0]
    enroll("prod-eu", "win-no-agent")
    store_report(broken, subnet_env=None)
    store_report(healthy)
    schedule = make_schedule(nodes="names", node_names="win-broken win-healthy win-no-agent")
    run = schedules.run_schedule(schedule.pk)
    assert run is not None and run.state == "ok"
    assert (run.nodes_total, run.nodes_done, run.findings_resolved) == (3, 3, 0)
    # The test reports are sparse: besides the failure, checks that lack data open "unknown" findings.
    assert run.findings_opened == Finding.objects.filter(resolved_at__isnull=True).count()
    failures = Finding.objects.filter(status="fail").values_list("node__name", "check_id")
    assert list(failures) == [("win-broken", SUBNET)]
    assert run.duration_seconds is not None and run.duration_seconds >= 0
    assert "2 nodes checked" in run.message and "1 without a report yet" in run.message
    assert Finding.objects.get(check_id=SUBNET, resolved_at__isnull=True).node == broken
    assert Node.objects.get(pk=broken.pk).health == "critical"
    schedule.refresh_from_db()
    assert schedule.running_since is None

    store_report(broken)  # fixed
    run = schedules.run_schedule(schedule.pk)
    assert run is not None and run.findings_resolved == 1
    assert not Finding.objects.get(check_id=SUBNET).is_open
    assert Node.objects.get(pk=broken.pk).health == "ok" and Node.objects.get(pk=healthy.pk).health == "ok"


def test_a_run_of_chosen_checks_resolves_only_those() -> None:
    node = enroll("prod-eu", "win-a")[0]
    store_report(node, subnet_env=None)
    schedules.run_schedule(make_schedule().pk)
    store_report(node)  # fixed, but the next schedule only runs the HNS checks
    run = schedules.run_schedule(make_schedule(name="hns only", checks="hns").pk)
    assert run is not None and run.findings_resolved == 0
    assert Finding.objects.get(check_id=SUBNET).is_open


def test_a_schedule_whose_run_is_still_going_skips_and_records_the_skip(monkeypatch: Any) -> None:
    node = enroll("prod-eu", "win-a")[0]
    store_report(node, subnet_env=None)
    schedule = make_schedule()
    overlapping: list[ScheduleRun | None] = []
    collect = schedules._collect_fresh

    def beat_fires_again(*args: Any) -> None:
        overlapping.append(schedules.run_schedule(schedule.pk))  # the next tick, while this run is going
        collect(*args)

    monkeypatch.setattr(schedules, "_collect_fresh", beat_fires_again)
    first = schedules.run_schedule(schedule.pk)
    assert first is not None and first.state == "ok"
    skipped = overlapping[0]
    assert skipped is not None and skipped.state == "skipped"
    assert f"run {first.pk}" in skipped.message and "still going" in skipped.message
    assert list(schedule.runs.order_by("id").values_list("state", flat=True)) == ["ok", "skipped"]
    assert Finding.objects.filter(check_id=SUBNET).count() == 1
    monkeypatch.setattr(schedules, "_collect_fresh", collect)
    assert schedules.run_schedule(schedule.pk).state == "ok"  # type: ignore[union-attr]


def test_a_run_whose_worker_died_is_marked_interrupted_and_the_next_run_goes_ahead() -> None:
    node = enroll("prod-eu", "win-a")[0]
    store_report(node, subnet_env=None)
    schedule = make_schedule()
    long_ago = timezone.now() - timedelta(hours=1)
    dead = ScheduleRun.objects.create(schedule=schedule, started_at=long_ago, heartbeat_at=long_ago)
    Schedule.objects.filter(pk=schedule.pk).update(running_since=long_ago)
    run = schedules.run_schedule(schedule.pk)
    assert run is not None and run.state == "ok" and run.findings_opened >= 1
    assert Finding.objects.filter(check_id=SUBNET, resolved_at__isnull=True).exists()
    dead.refresh_from_db()
    assert dead.state == "interrupted" and dead.finished_at is not None


def test_a_run_still_heard_from_is_not_taken_for_dead() -> None:
    schedule = make_schedule()
    alive = ScheduleRun.objects.create(schedule=schedule)
    Schedule.objects.filter(pk=schedule.pk).update(running_since=alive.started_at)
    assert schedules.recover_all() == 0
    assert schedules.run_schedule(schedule.pk).state == "skipped"  # type: ignore[union-attr]


def test_a_run_that_fails_says_why_and_releases_its_schedule(monkeypatch: Any) -> None:
    enroll("prod-eu", "win-a")
    schedule = make_schedule()

    def broken(_schedule: Schedule) -> list[int]:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(schedules, "target_node_ids", broken)
    run = schedules.run_schedule(schedule.pk)
    assert run is not None and run.state == "failed" and "the database went away" in run.message
    schedule.refresh_from_db()
    assert schedule.running_since is None


def queries_for(count: int) -> int:
    Finding.objects.all().delete()
    Node.objects.all().delete()
    for i in range(count):
        store_report(
            enroll("prod-eu", f"win-{i:03}")[0], subnet_env=None if i % 2 else "FLANNEL_SUBNET=10.244.1.1/24\n"
        )
    schedule = Schedule.objects.get(name=schedules.DEFAULT_NAME)
    with CaptureQueriesContext(connection) as captured:
        schedules.run_schedule(schedule.pk)
    return len(captured)


def test_a_run_costs_as_many_queries_for_many_nodes_as_for_a_few() -> None:
    small, medium, large = queries_for(4), queries_for(14), queries_for(24)
    assert small <= medium == large, (small, medium, large)


def test_a_viewer_reads_the_schedules_but_cannot_change_them(client: Any, viewer: Any) -> None:
    schedule = make_schedule()
    client.force_login(viewer)
    html = client.get("/schedules").content.decode()
    assert "nightly" in html and "every 1 minute" in html and "New schedule" not in html
    assert client.get(f"/schedules/{schedule.pk}/").status_code == 200
    assert client.post(f"/schedules/{schedule.pk}/toggle").status_code == 403
    assert client.post(f"/schedules/{schedule.pk}/edit", {"name": "x"}).status_code == 403
    assert client.post("/schedules/new", {"name": "x"}).status_code == 403


def test_an_operator_creates_edits_and_pauses_a_schedule(client: Any, operator: Any) -> None:
    client.force_login(operator)
    form = {
        "name": "gpu pool",
        "enabled": "on",
        "nodes": "selector",
        "label_selector": "pool in (gpu),kubernetes.io/os=windows",
        "checks": "flannel hns.network-missing",
        "timing": "cron",
        "cron": "*/30  * * * *",
    }
    response = client.post("/schedules/new", form)
    assert response.status_code == 302
    schedule = Schedule.objects.get(name="gpu pool")
    assert schedule.cron == "*/30 * * * *" and schedule.interval_seconds is None
    assert schedule.periodic_task is not None and schedule.periodic_task.crontab is not None
    response = client.post(f"/schedules/{schedule.pk}/edit", {**form, "timing": "interval", "interval_seconds": "300"})
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.cron == "" and schedule.periodic_task.interval.every == 300  # type: ignore[union-attr]
    client.post(f"/schedules/{schedule.pk}/toggle")
    assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"label_selector": "pool in (gpu"}, "unbalanced"),
        ({"checks": "flannel nonsense.check"}, "unknown check id or area: nonsense.check"),
        ({"interval_seconds": "3"}, "at least 10 seconds"),
        ({"nodes": "names", "node_names": ""}, "Name at least one node"),
    ],
)
def test_the_schedule_form_says_what_to_fix(client: Any, operator: Any, changes: dict[str, str], message: str) -> None:
    client.force_login(operator)
    form = {
        "name": "x",
        "nodes": "selector",
        "label_selector": "pool=gpu",
        "timing": "interval",
        "interval_seconds": "60",
    }
    response = client.post("/schedules/new", {**form, **changes})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Schedule.objects.filter(name="x").exists()
