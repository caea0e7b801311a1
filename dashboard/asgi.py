"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)

from dashboard.routing import websocket_application  # noqa: E402
from dashboard.server.slowbody import BodyIdleTimeout  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BodyIdleTimeout(django_asgi_app),
        "websocket": websocket_application,
    }
)
