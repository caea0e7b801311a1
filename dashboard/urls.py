"""URLs: pages under /, the agents' API under /api/v1/."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard import ingest
from dashboard.access import oidc, signin
from dashboard.cluster import views as cluster_views
from dashboard.pages import bundleviews, diagnose_views, monitor_views, views
from dashboard.server import metrics

urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("enroll", views.enroll, name="enroll"),
    path("diagnose", diagnose_views.diagnose, name="diagnose"),
    path("workloads", cluster_views.workloads, name="workloads"),
    path("clusters/<slug:cluster>/nodes/<str:name>/", views.node, name="node"),
    path("clusters/<slug:cluster>/nodes/<str:name>/diagnose", views.run_diagnostics, name="run-diagnostics"),
    path("clusters/<slug:cluster>/nodes/<str:name>/remove", views.remove_node, name="remove-node"),
    path("clusters/<slug:cluster>/nodes/<str:name>/tokens", views.create_token, name="create-token"),
    path("clusters/<slug:cluster>/nodes/<str:name>/requests", views.agent_request, name="agent-request"),
    path(
        "clusters/<slug:cluster>/nodes/<str:name>/tokens/<int:token_id>/revoke",
        views.revoke_token,
        name="revoke-token",
    ),
    path("clusters/<slug:cluster>/nodes/<str:name>/bundles", bundleviews.export_node, name="export-node"),
    path("clusters/<slug:cluster>/nodes/<str:name>/issue", bundleviews.open_issue, name="open-issue"),
    path("bundles", bundleviews.export_selection, name="export-selection"),
    path("bundles/<int:bundle_id>/", bundleviews.bundle_page, name="bundle"),
    path("bundles/<int:bundle_id>/download", bundleviews.download, name="bundle-download"),
    path("schedules", monitor_views.schedule_list, name="schedules"),
    path("schedules/new", monitor_views.schedule_create, name="schedule-create"),
    path("schedules/<int:pk>/", monitor_views.schedule_detail, name="schedule"),
    path("schedules/<int:pk>/edit", monitor_views.schedule_update, name="schedule-update"),
    path("schedules/<int:pk>/toggle", monitor_views.schedule_toggle, name="schedule-toggle"),
    path("schedules/<int:pk>/run", monitor_views.schedule_run, name="schedule-run"),
    path("schedules/<int:pk>/delete", monitor_views.schedule_delete, name="schedule-delete"),
    path("history", monitor_views.history, name="history"),
    path("findings/<int:pk>/acknowledge", monitor_views.finding_acknowledge, name="finding-acknowledge"),
    path("findings/<int:pk>/silence", monitor_views.finding_silence, name="finding-silence"),
    path("findings/<int:pk>/unsilence", monitor_views.finding_unsilence, name="finding-unsilence"),
    path("notifications", monitor_views.notifications, name="notifications"),
    path("notifications/new", monitor_views.channel_create, name="channel-create"),
    path("notifications/<int:pk>/test", monitor_views.channel_test, name="channel-test"),
    path("notifications/<int:pk>/toggle", monitor_views.channel_toggle, name="channel-toggle"),
    path("notifications/<int:pk>/delete", monitor_views.channel_delete, name="channel-delete"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/v1/reports", ingest.post_report, name="api-reports"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("login/", signin.LoginView.as_view(), name="login"),
    path("oidc/authenticate/", oidc.authenticate, name="oidc_authentication_init"),
    path("oidc/callback/", oidc.callback, name="oidc_authentication_callback"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
