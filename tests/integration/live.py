"""Clients for tests against a running stack: post a report, watch a page's WebSocket."""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from websockets.sync.client import ClientConnection, connect


def post(url: str, token: str, report: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/api/v1/reports",
        data=gzip.compress(json.dumps(report).encode()),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Content-Encoding": "gzip"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def session_cookie(user: Any) -> str:
    """A signed-in session for ``user`` in the test database."""
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def open_socket(url: str, path: str, user: Any | None = None) -> ClientConnection:
    user = user or get_user_model().objects.create_user("watcher", password="x")
    ws_url = url.replace("http://", "ws://") + path
    return connect(ws_url, additional_headers={"Cookie": session_cookie(user), "Origin": url}, open_timeout=10)


def wait_for_frame(socket: ClientConnection, needle: str, *, absent: str | None = None, timeout: float = 20.0) -> str:
    """Read frames until one contains ``needle`` (and not ``absent``); return it."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            frame = str(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        seen += 1
        if needle in frame and (absent is None or absent not in frame):
            return frame
    raise AssertionError(f"no frame with {needle!r} within {timeout} s ({seen} frames seen)")
