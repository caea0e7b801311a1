"""Probes for orchestrators: ``/livez`` (the process answers) and ``/readyz`` (it can serve: database
and Redis reachable).

They are answered by a middleware placed first, before host validation, HTTPS redirects and
sessions: kubelet and compose probe the pod's own address, which is not one of
``DJANGO_ALLOWED_HOSTS``, and a probe must not create sessions. Liveness checks nothing outside
the process, so a database outage makes pods unready (no traffic) without restarting them all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

LIVEZ = "/livez"
READYZ = "/readyz"


def readiness() -> dict[str, str]:
    """Each dependency -> "ok" or why it failed (one line)."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"
        checks["database"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    try:
        # Its own short-lived connection: the process's shared client has long timeouts.
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        checks["redis"] = "ok"
    except Exception as exc:  # connection refused, timeout, auth: all "not ready"
        checks["redis"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return checks


class ProbeMiddleware:
    """Answers GET/HEAD ``/livez`` and ``/readyz``; everything else goes on down the stack."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path not in (LIVEZ, READYZ) or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        if request.path == LIVEZ:
            return JsonResponse({"status": "ok"})
        checks = readiness()
        ready = all(value == "ok" for value in checks.values())
        if not ready:
            log.warning("not ready: %s", checks)
        body = {"status": "ok" if ready else "unavailable", "checks": checks}
        return JsonResponse(body, status=200 if ready else 503)
