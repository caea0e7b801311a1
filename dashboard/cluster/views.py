"""The Workloads page: workload findings on live API objects, filtered by cluster, namespace and check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.cluster.pages import WorkloadQuery, workloads_context
from dashboard.pages.http import AuthedRequest


@login_required
@require_GET
def workloads(request: AuthedRequest) -> HttpResponse:
    context = workloads_context(WorkloadQuery.from_params(request.GET))
    if request.htmx and not request.htmx.boosted:
        return render(request, "dashboard/workloads.html#workloads-table", context)
    return render(request, "dashboard/workloads.html", context)
