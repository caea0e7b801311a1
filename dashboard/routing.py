"""WebSocket URLs."""

from __future__ import annotations

from django.urls import path

from dashboard import consumers

websocket_urlpatterns = [
    path("ws/fleet/", consumers.FleetConsumer.as_asgi()),
    path("ws/clusters/<slug:cluster>/nodes/<str:name>/", consumers.NodeConsumer.as_asgi()),
]
