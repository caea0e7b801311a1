"""WebSocket URLs.

Browsers authenticate with their session cookie, so their sockets must come from a page
of this dashboard: the ``Origin`` header must name the same scheme, host AND port as the
socket itself (or one of ``DJANGO_CSRF_TRUSTED_ORIGINS``), and the host must be allowed.
Agents authenticate with their bearer token and send no Origin header.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.urls import path

from dashboard import agents, consumers

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def _origin_tuple(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or a Host header, default port filled in; None if malformed."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def socket_origin(scope: dict[str, Any]) -> tuple[str, str, int] | None:
    """The origin a page of this dashboard has, for the socket of ``scope`` (its Host header and scheme)."""
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    scheme = _HTTP_SCHEME.get(str(scope.get("scheme") or "ws"), "http")
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy is not None:
        name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
        if headers.get(name, b"").decode("latin-1").split(",")[0].strip() == proxy[1]:
            scheme = "https"
    return _origin_tuple(scheme, host) if host else None


def origin_allowed(scope: dict[str, Any]) -> bool:
    """True when the socket's Origin is this dashboard's own origin (scheme, host and port) or a trusted one."""
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"origin", b"").decode("latin-1").strip()
    if not raw or raw == "null":
        return False
    parts = urlsplit(raw)
    origin = _origin_tuple(parts.scheme, parts.netloc)
    if origin is None:
        return False
    trusted = [_origin_tuple(urlsplit(o).scheme, urlsplit(o).netloc) for o in settings.CSRF_TRUSTED_ORIGINS]
    if origin in trusted:
        return True
    own = socket_origin(scope)
    host, _port = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    return own is not None and origin == own and validate_host(host, settings.ALLOWED_HOSTS)


class SameOriginValidator:
    """Closes a browser socket (403 at the handshake) whose Origin is not this dashboard's own."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4403})
            return None
        return await self.app(scope, receive, send)


def for_browsers(app: Any) -> Any:
    return SameOriginValidator(AuthMiddlewareStack(app))


websocket_application = URLRouter(
    [
        path("ws/agent/", agents.AgentConsumer.as_asgi()),
        path("ws/fleet/", for_browsers(consumers.FleetConsumer.as_asgi())),
        path("ws/clusters/<slug:cluster>/nodes/<str:name>/", for_browsers(consumers.NodeConsumer.as_asgi())),
    ]
)
