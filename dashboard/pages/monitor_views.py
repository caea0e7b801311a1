"""Pages of scheduled checks, finding history and notifications; and what operators do on findings."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from dashboard import lifecycle, live, notify, queue, schedules
from dashboard.access.roles import is_operator, operator_required
from dashboard.models import Cluster, Finding
from dashboard.monitoring import Delivery, NotificationChannel, Schedule, ScheduleRun
from dashboard.pages import charts
from dashboard.pages.forms import AcknowledgeForm, ChannelForm, ScheduleForm, SilenceForm
from dashboard.pages.http import AuthedRequest
from diagnostics.model import Severity

# -- schedules ----------------------------------------------------------------


def _schedules_page(request: AuthedRequest, form: ScheduleForm | None, *, status: int = 200) -> HttpResponse:
    rows = list(Schedule.objects.select_related("periodic_task"))
    last = schedules.last_runs(rows)
    context = {
        "schedules": [(s, last.get(s.pk)) for s in rows],
        "form": form if form is not None else (ScheduleForm() if is_operator(request.user) else None),
        "areas": sorted({c.split(".", 1)[0] for c in lifecycle.known_check_ids()}),
    }
    return render(request, "dashboard/schedules.html", context, status=status)


@login_required
@require_GET
def schedule_list(request: AuthedRequest) -> HttpResponse:
    return _schedules_page(request, None)


@operator_required
@require_POST
def schedule_create(request: AuthedRequest) -> HttpResponse:
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        return _schedules_page(request, form, status=400)
    with transaction.atomic():
        schedule = form.save()
        schedules.sync_periodic_task(schedule)
    messages.success(request, f"Schedule {schedule.name!r} created: it runs {schedule.timing}.")
    return redirect("schedule", schedule.pk)


def _schedule_page(
    request: HttpRequest, schedule: Schedule, form: ScheduleForm | None, status: int = 200
) -> HttpResponse:
    context = {"schedule": schedule, "form": form, "runs": list(schedule.runs.all()[:50])}
    return render(request, "dashboard/schedule.html", context, status=status)


@login_required
@require_GET
def schedule_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule, pk=pk)
    return _schedule_page(request, schedule, ScheduleForm(instance=schedule) if is_operator(request.user) else None)


@operator_required
@require_POST
def schedule_update(request: AuthedRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule, pk=pk)
    form = ScheduleForm(request.POST, instance=schedule)
    if not form.is_valid():
        return _schedule_page(request, schedule, form, status=400)
    with transaction.atomic():
        schedule = form.save()
        schedules.sync_periodic_task(schedule)
    messages.success(request, f"Schedule {schedule.name!r} saved.")
    return redirect("schedule", schedule.pk)


@operator_required
@require_POST
def schedule_toggle(request: AuthedRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule, pk=pk)
    schedule.enabled = not schedule.enabled
    with transaction.atomic():
        schedule.save(update_fields=["enabled"])
        schedules.sync_periodic_task(schedule)
    messages.success(request, f"Schedule {schedule.name!r} {'resumed' if schedule.enabled else 'paused'}.")
    return redirect("schedules")


@operator_required
@require_POST
def schedule_run(request: AuthedRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule, pk=pk)
    queue.send(queue.RUN_SCHEDULE, schedule.pk, ScheduleRun.TRIGGER_MANUAL)
    messages.info(request, f"Schedule {schedule.name!r} started; its run appears below.")
    return redirect("schedule", schedule.pk)


@operator_required
@require_POST
def schedule_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule, pk=pk)
    schedules.delete_schedule(schedule)
    messages.success(request, f"Schedule {schedule.name!r} deleted.")
    return redirect("schedules")


# -- history and findings -----------------------------------------------------


@login_required
@require_GET
def history(request: AuthedRequest) -> HttpResponse:
    window = request.GET.get("window", "24h")
    window = window if window in lifecycle.HISTORY_WINDOWS else "24h"
    cluster = request.GET.get("cluster", "").strip()[:63]
    context = {
        **lifecycle.fleet_history(window, cluster=cluster),
        "open_chart": charts.open_by_severity(window, cluster=cluster),
        "flow_chart": charts.opened_resolved(window, cluster=cluster),
        "resolve_times": charts.time_to_resolve(window, cluster=cluster),
        "severities": Severity.ordered(),
        "window": window,
        "windows": list(lifecycle.HISTORY_WINDOWS),
        "cluster": cluster,
        "clusters": list(Cluster.objects.values_list("name", flat=True)),
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, "dashboard/history.html#history-charts", context)
    return render(request, "dashboard/history.html", context)


def _finding_done(request: AuthedRequest, finding: Finding, error: str = "", success: str = "") -> HttpResponse:
    """After an action on a finding: the node page for a plain form; for htmx, a status (the page updates live)."""
    if not error:
        live.nodes_changed([finding.node])
    if request.htmx:
        return HttpResponse(error, status=400 if error else 204, content_type="text/plain; charset=utf-8")
    if error:
        messages.error(request, error)
    elif success:
        messages.success(request, success)
    return redirect(finding.node)


def _finding(pk: int) -> Finding:
    return get_object_or_404(Finding.objects.select_related("node__cluster"), pk=pk)


@operator_required
@require_POST
def finding_acknowledge(request: AuthedRequest, pk: int) -> HttpResponse:
    finding = _finding(pk)
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        return _finding_done(request, finding, "The note is too long (2,000 characters at most).")
    try:
        lifecycle.acknowledge(finding, request.user, form.cleaned_data["note"])
    except ValueError as exc:
        return _finding_done(request, finding, str(exc))
    return _finding_done(request, finding, success=f"{finding.check_id} acknowledged.")


@operator_required
@require_POST
def finding_silence(request: AuthedRequest, pk: int) -> HttpResponse:
    finding = _finding(pk)
    form = SilenceForm(request.POST)
    if not form.is_valid():
        return _finding_done(request, finding, "Choose how long to silence it for: 1, 4, 24 or 168 hours.")
    duration = timedelta(hours=form.cleaned_data["hours"])
    try:
        event = lifecycle.silence(finding, request.user, duration, form.cleaned_data["note"])
    except ValueError as exc:
        return _finding_done(request, finding, str(exc))
    return _finding_done(request, finding, success=f"{finding.check_id} silenced {event.note}.")


@operator_required
@require_POST
def finding_unsilence(request: AuthedRequest, pk: int) -> HttpResponse:
    finding = _finding(pk)
    lifecycle.unsilence(finding, request.user, note="ended by hand")
    return _finding_done(request, finding, success=f"{finding.check_id}: silence ended.")


# -- notifications ------------------------------------------------------------


def _notifications_page(request: AuthedRequest, form: ChannelForm | None, *, status: int = 200) -> HttpResponse:
    context = {
        "channels": list(NotificationChannel.objects.all()),
        "deliveries": list(
            Delivery.objects.select_related("channel", "event__finding__node__cluster").order_by("-created_at", "-id")[
                :100
            ]
        ),
        "form": form if form is not None else (ChannelForm() if is_operator(request.user) else None),
    }
    return render(request, "dashboard/notifications.html", context, status=status)


@login_required
@require_GET
def notifications(request: AuthedRequest) -> HttpResponse:
    return _notifications_page(request, None)


@operator_required
@require_POST
def channel_create(request: AuthedRequest) -> HttpResponse:
    form = ChannelForm(request.POST)
    if not form.is_valid():
        return _notifications_page(request, form, status=400)
    channel = form.save(commit=False)
    channel.created_by = request.user
    channel.save()
    messages.success(request, f"Channel {channel.name!r} added. Send it a test to check it works.")
    return redirect("notifications")


@operator_required
@require_POST
def channel_test(request: AuthedRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(NotificationChannel, pk=pk)
    delivery = notify.send_test(channel)
    if delivery.state == Delivery.SENT:
        messages.success(request, f"Test sent to {channel.name!r}.")
    else:
        messages.error(request, f"Test to {channel.name!r} failed: {delivery.last_error}")
    return redirect("notifications")


@operator_required
@require_POST
def channel_toggle(request: AuthedRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(NotificationChannel, pk=pk)
    channel.enabled = not channel.enabled
    channel.save(update_fields=["enabled"])
    messages.success(request, f"Channel {channel.name!r} {'enabled' if channel.enabled else 'paused'}.")
    return redirect("notifications")


@operator_required
@require_POST
def channel_delete(request: AuthedRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(NotificationChannel, pk=pk)
    channel.delete()
    messages.success(request, f"Channel {channel.name!r} deleted with its delivery log.")
    return redirect("notifications")
