"""Bundle pages: export a node or a selection, follow the build, download, open a GitHub issue."""

from __future__ import annotations

from django.contrib import messages
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from dashboard import bundles, bundlestore, queue
from dashboard.access.roles import operator_required
from dashboard.models import Bundle, Node
from dashboard.pages.http import AuthedRequest

CONTENT_TYPES = {"tar.gz": "application/gzip", "zip": "application/zip"}


def _node(cluster: str, name: str) -> Node:
    return get_object_or_404(Node.objects.select_related("cluster"), cluster__name=cluster, name=name)


def _create(request: AuthedRequest, nodes: list[Node]) -> Bundle:
    fmt = request.POST.get("format", "tar.gz")
    bundle = Bundle.objects.create(
        requested_by=request.user,
        fmt=fmt if fmt in dict(Bundle.FORMATS) else "tar.gz",
        redact=request.POST.get("no_redact") != "1",
        redact_ips=request.POST.get("redact_ips") == "1",
        redact_hosts=request.POST.get("redact_hosts") == "1",
    )
    bundle.nodes.set(nodes)
    queue.send(queue.BUILD_BUNDLE, bundle.pk)
    return bundle


@operator_required
@require_POST
def export_node(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    target = _node(cluster, name)
    bundle = _create(request, [target])
    if request.htmx:
        return render(request, "dashboard/node.html#bundle-status", {"node": target, "bundle": bundle})
    messages.info(request, "Bundle export started.")
    return redirect(target)


@operator_required
@require_POST
def export_selection(request: AuthedRequest) -> HttpResponse:
    ids = [int(i) for i in request.POST.getlist("node") if i.isdigit()][:500]
    nodes = list(Node.objects.select_related("cluster").filter(pk__in=ids))
    if not nodes:
        messages.error(request, "Select at least one node to export.")
        return redirect("fleet")
    return redirect(_create(request, nodes))


@operator_required
@require_GET
def bundle_page(request: AuthedRequest, bundle_id: int) -> HttpResponse:
    bundle = get_object_or_404(Bundle, pk=bundle_id)
    context = {"bundle": bundle, "nodes": list(bundle.nodes.select_related("cluster"))}
    if request.htmx and not request.htmx.boosted:
        return render(request, "dashboard/bundle.html#bundle-detail", context)
    return render(request, "dashboard/bundle.html", context)


@operator_required
@require_GET
def download(request: AuthedRequest, bundle_id: int) -> StreamingHttpResponse:
    """Stream the bundle from its storage, one chunk in memory at a time.

    Under ASGI the body is an async iterator (a sync one would make Django read the whole file
    into memory first, with a warning); under WSGI a plain iterator.
    """
    bundle = get_object_or_404(Bundle, pk=bundle_id)
    opened = bundles.open_file(bundle)
    if opened is None:
        raise Http404("This bundle is not ready, failed, or its file was removed.")
    download_name = bundle.file_name.split("-", 1)[1] if "-" in bundle.file_name else bundle.file_name
    body = bundlestore.aiterate(opened.file) if isinstance(request, ASGIRequest) else bundlestore.iterate(opened.file)
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPES.get(bundle.fmt, "application/octet-stream"))
    response["Content-Length"] = str(opened.size)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=download_name) or ""
    return response


@operator_required
@require_GET
def open_issue(request: AuthedRequest, cluster: str, name: str) -> HttpResponse:
    target = _node(cluster, name)
    try:
        url = bundles.github_issue_url(target)
    except bundles.ExportError as exc:
        messages.error(request, str(exc))
        return redirect(target)
    return HttpResponseRedirect(url)
