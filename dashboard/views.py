"""The pages: thin function views; rules live in ``diagnosis``, ``fleet`` and the models."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from agent.protocol import RequestError
from dashboard import agents, tasks
from dashboard.agents import send_request
from dashboard.fleet import FleetQuery, fleet_context
from dashboard.http import AuthedRequest
from dashboard.models import AgentToken, DiagnosisRun, Node
from dashboard.models import enroll as enroll_node
from dashboard.nodepage import node_context
from dashboard.roles import operator_required


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@login_required
@require_GET
def fleet(request: AuthedRequest) -> HttpResponse:
    context = fleet_context(FleetQuery.from_params(request.GET))
    if request.htmx and not request.htmx.boosted:
        return render(request, "dashboard/fleet.html#fleet-table", context)
    return render(request, "dashboard/fleet.html", context)


def _node(cluster: str, name: str) -> Node:
    return get_object_or_404(Node.objects.select_related("cluster"), cluster__name=cluster, name=name)


@login_required
@require_GET
def node(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    return render(request, "dashboard/node.html", node_context(_node(cluster, name), request.user))


@operator_required
@require_POST
def run_diagnostics(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    target = _node(cluster, name)
    run = DiagnosisRun.objects.create(node=target, trigger=DiagnosisRun.TRIGGER_MANUAL, requested_by=request.user)
    tasks.run_now.delay(run.pk)
    if request.htmx:
        return render(request, "dashboard/node.html#run-progress", {"node": target, "run": run})
    messages.info(request, "Diagnostics started.")
    return redirect(target)


@operator_required
@require_POST
def create_token(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    target = _node(cluster, name)
    label = request.POST.get("label", "").strip()[:100]
    _token, raw = AgentToken.issue(target, label=label, user=request.user)
    context = node_context(target, request.user)
    context["new_token"] = raw
    return render(request, "dashboard/node.html", context, status=201)


@operator_required
@require_POST
def revoke_token(request: AuthedRequest, cluster: str, name: str, token_id: int) -> HttpResponse:
    target = _node(cluster, name)
    token = get_object_or_404(AgentToken, pk=token_id, node=target)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        agents.cut_off([agents.token_group(token.pk)], "token revoked")
        messages.success(request, f"Token {token.hint}… revoked: the agent using it can no longer report.")
    return redirect(target)


@operator_required
@require_POST
def enroll(request: AuthedRequest) -> HttpResponse:
    """Register a node and show its new token once."""
    try:
        target, raw = enroll_node(
            request.POST.get("cluster", "").strip(),
            request.POST.get("node", "").strip(),
            label=request.POST.get("label", "").strip()[:100],
            user=request.user,
        )
    except ValueError as exc:
        context = fleet_context(FleetQuery.from_params(request.GET))
        context["enroll_error"] = str(exc)
        return render(request, "dashboard/fleet.html", context, status=400)
    context = node_context(target, request.user)
    context["new_token"] = raw
    return render(request, "dashboard/node.html", context, status=201)


def _request_args(name: str, form: Any) -> dict[str, Any]:
    """Turn the connectivity form's fields into a request's arguments (validated later)."""
    args: dict[str, Any] = {}
    for field in ("target", "ip", "node_ip"):
        if form.get(field, "").strip():
            args[field] = form[field].strip()
    if form.get("port", "").strip():
        port = form["port"].strip()
        args["port"] = int(port) if port.isdigit() else port
    if name == "dns-lookup":
        args["names"] = form.get("names", "").replace(",", " ").split()
    return args


@operator_required
@require_POST
def agent_request(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    """Send a named on-demand request (a connectivity test, collect now) to the node's agent."""
    target = _node(cluster, name)
    kind = request.POST.get("request", "")
    try:
        send_request(target, kind, _request_args(kind, request.POST), user=request.user.get_username())
    except RequestError as exc:
        if request.htmx:
            return render(request, "dashboard/node.html#request-error", {"error": str(exc)}, status=400)
        messages.error(request, f"Request not sent: {exc}")
    if request.htmx:
        return HttpResponse(status=204)  # the result arrives over the node page's socket
    return redirect(target)
