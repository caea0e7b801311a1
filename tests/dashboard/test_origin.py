"""Browser sockets are accepted only from this dashboard's own origin: scheme, host and port."""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from dashboard.routing import origin_allowed, websocket_application


def scope(origin: str | None, host: str = "wnd.example.internal:8443", scheme: str = "wss", **extra: str) -> Any:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.fixture(autouse=True)
def hosts(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["wnd.example.internal", "localhost"]
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.SECURE_PROXY_SSL_HEADER = None


def test_the_dashboards_own_origin_is_accepted() -> None:
    assert origin_allowed(scope("https://wnd.example.internal:8443"))
    assert origin_allowed(scope("http://localhost:8000", host="localhost:8000", scheme="ws"))
    assert origin_allowed(scope("https://wnd.example.internal", host="wnd.example.internal"))  # 443 both


def test_another_port_of_the_same_host_is_refused() -> None:
    assert not origin_allowed(scope("https://wnd.example.internal:9999"))
    assert not origin_allowed(scope("http://localhost:3000", host="localhost:8000", scheme="ws"))


def test_another_scheme_is_refused() -> None:
    assert not origin_allowed(scope("http://wnd.example.internal:8443"))


def test_another_host_or_no_origin_is_refused() -> None:
    assert not origin_allowed(scope("https://evil.example:8443"))
    assert not origin_allowed(scope(None))
    assert not origin_allowed(scope("null"))


def test_a_host_outside_allowed_hosts_is_refused_even_from_itself() -> None:
    assert not origin_allowed(scope("https://other.example:8443", host="other.example:8443"))


def test_behind_a_tls_proxy_the_forwarded_scheme_counts(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    forwarded = {"x-forwarded-proto": "https"}
    assert origin_allowed(scope("https://wnd.example.internal", host="wnd.example.internal", scheme="ws", **forwarded))
    assert not origin_allowed(scope("https://wnd.example.internal", host="wnd.example.internal", scheme="ws"))


def test_a_trusted_origin_is_accepted_with_its_port(settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example.internal:444"]
    assert origin_allowed(scope("https://portal.example.internal:444"))
    assert not origin_allowed(scope("https://portal.example.internal"))


async def test_a_socket_from_another_port_is_closed_at_the_handshake() -> None:
    comm = WebsocketCommunicator(
        websocket_application,
        "/ws/fleet/",
        headers=[(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8001")],
    )
    connected, code = await comm.connect()
    assert not connected
    assert code == 4403
    await comm.disconnect()
