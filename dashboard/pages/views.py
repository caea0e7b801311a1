"""The pages: thin function views; rules live in ``diagnosis``, ``fleet`` and the models."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from agent.protocol import RequestError
from dashboard import agents, queue
from dashboard.access.roles import operator_required
from dashboard.agents import send_request
from dashboard.models import AgentToken, DiagnosisRun, Node
from dashboard.models import enroll as enroll_node
from dashboard.nodetests import resolve_service
from dashboard.pages.fleet import FleetQuery, fleet_context
from dashboard.pages.http import AuthedRequest
from dashboard.pages.nodepage import install_commands, node_context, remove


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page links to: send them the static icon."""
    return redirect(static("favicon.svg"), permanent=True)


@login_required
@require_GET
def fleet(request: AuthedRequest) -> HttpResponse:
    context = fleet_context(FleetQuery.from_params(request.GET))
    if request.htmx and not request.htmx.boosted:
        return render(request, "dashboard/fleet.html#fleet-table", context)
    return render(request, "dashboard/fleet.html", context)


def _node(cluster: str, name: str) -> Node:
    return get_object_or_404(Node.objects.select_related("cluster"), cluster__name=cluster, name=name)


NEW_TOKEN_KEY = "wnd_new_token"


def _remember_token(request: AuthedRequest, node: Node, raw: str) -> None:
    """Keep a new token for the next page only: shown once, never minted again by a reload."""
    request.session[NEW_TOKEN_KEY] = {"node": node.pk, "token": raw}


def _take_token(request: AuthedRequest, node: Node) -> str:
    kept = request.session.get(NEW_TOKEN_KEY)
    if not kept or kept.get("node") != node.pk:
        return ""
    del request.session[NEW_TOKEN_KEY]
    return str(kept.get("token", ""))


@login_required
@require_GET
def node(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    target = _node(cluster, name)
    context = node_context(target, request.user)
    raw = _take_token(request, target) if context["is_operator"] else ""
    if raw:
        context["new_token"] = raw
        context["install"] = install_commands(request.build_absolute_uri("/").rstrip("/"), target, raw)
    response = render(request, "dashboard/node.html", context)
    if raw:
        response["Cache-Control"] = "no-store"  # the token must not come back from the cache either
    return response


@operator_required
@require_POST
def run_diagnostics(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    target = _node(cluster, name)
    run = DiagnosisRun.objects.create(node=target, trigger=DiagnosisRun.TRIGGER_MANUAL, requested_by=request.user)
    queue.send(queue.RUN_NOW, run.pk)
    if request.htmx:
        return render(request, "dashboard/node.html#run-progress", {"node": target, "run": run, "is_operator": True})
    messages.info(request, "Diagnostics started.")
    return redirect(target)


@operator_required
@require_POST
def create_token(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    target = _node(cluster, name)
    label = request.POST.get("label", "").strip()[:100]
    _token, raw = AgentToken.issue(target, label=label, user=request.user)
    _remember_token(request, target, raw)
    return redirect(f"{target.get_absolute_url()}#admin")


@operator_required
@require_POST
def revoke_token(request: AuthedRequest, cluster: str, name: str, token_id: int) -> HttpResponse:
    target = _node(cluster, name)
    token = get_object_or_404(AgentToken, pk=token_id, node=target)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        agents.tokens_revoked(target, [token.pk])  # its open connection closes now
        messages.success(request, f"Token {token.hint}… revoked: the agent using it can no longer report.")
    return redirect(f"{target.get_absolute_url()}#admin")


@operator_required
@require_POST
def remove_node(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    """Delete a node with its reports, findings and tokens (its agent can no longer report)."""
    target = _node(cluster, name)
    label = f"{target.cluster.name}/{target.name}"
    remove(target)
    messages.success(request, f"Node {label} removed with its reports, findings and tokens.")
    return redirect("fleet")


@operator_required
@require_POST
def enroll(request: AuthedRequest) -> HttpResponse:
    """Register a node, then show its new token once on the node page (redirect after POST)."""
    cluster_name = request.POST.get("cluster", "").strip()
    node_name = request.POST.get("node", "").strip()
    active = AgentToken.objects.filter(
        node__cluster__name=cluster_name, node__name=node_name, revoked_at__isnull=True
    ).count()
    try:
        target, raw = enroll_node(
            cluster_name, node_name, label=request.POST.get("label", "").strip()[:100], user=request.user
        )
    except ValueError as exc:
        context = fleet_context(FleetQuery.from_params(request.GET))
        context["enroll_error"] = str(exc)
        context["enroll_values"] = {"cluster": cluster_name, "node": node_name}
        return render(request, "dashboard/fleet.html", context, status=400)
    if active:
        messages.warning(
            request,
            f"{target.cluster.name}/{target.name} was already enrolled and still has {active} active "
            f"token{'s' if active > 1 else ''}: revoke {'them' if active > 1 else 'it'} below "
            "unless another agent uses it.",
        )
    _remember_token(request, target, raw)
    return redirect(f"{target.get_absolute_url()}#admin")


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
        args = resolve_service(target, request.POST) if kind == "service-vip" else _request_args(kind, request.POST)
        send_request(target, kind, args, user=request.user.get_username())
    except RequestError as exc:
        if request.htmx:
            return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
        messages.error(request, f"Request not sent: {exc}")
    if request.htmx:
        return HttpResponse(status=204)  # the result arrives over the node page's socket
    return redirect(target)
