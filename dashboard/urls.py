"""URLs: pages under /, the agents' API under /api/v1/."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard import ingest, views

urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("enroll", views.enroll, name="enroll"),
    path("clusters/<slug:cluster>/nodes/<str:name>/", views.node, name="node"),
    path("clusters/<slug:cluster>/nodes/<str:name>/diagnose", views.run_diagnostics, name="run-diagnostics"),
    path("clusters/<slug:cluster>/nodes/<str:name>/tokens", views.create_token, name="create-token"),
    path("clusters/<slug:cluster>/nodes/<str:name>/requests", views.agent_request, name="agent-request"),
    path(
        "clusters/<slug:cluster>/nodes/<str:name>/tokens/<int:token_id>/revoke",
        views.revoke_token,
        name="revoke-token",
    ),
    path("api/v1/reports", ingest.post_report, name="api-reports"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
