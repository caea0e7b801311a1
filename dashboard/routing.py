"""WebSocket URLs.

Browsers authenticate with their session cookie, so their sockets are checked
against allowed origins; agents authenticate with their bearer token and send
no Origin header.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from dashboard import agents, consumers


def for_browsers(app: Any) -> Any:
    return AllowedHostsOriginValidator(AuthMiddlewareStack(app))


websocket_application = URLRouter(
    [
        path("ws/agent/", agents.AgentConsumer.as_asgi()),
        path("ws/fleet/", for_browsers(consumers.FleetConsumer.as_asgi())),
        path("ws/clusters/<slug:cluster>/nodes/<str:name>/", for_browsers(consumers.NodeConsumer.as_asgi())),
    ]
)
