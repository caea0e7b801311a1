"""/livez and /readyz: what kubelet and compose probe."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def test_livez_answers_from_any_host_without_touching_the_database(
    client: Any, settings: Any, django_assert_num_queries: Any
) -> None:
    settings.ALLOWED_HOSTS = ["doctor.example.com"]
    with django_assert_num_queries(0):
        response = client.get("/livez", HTTP_HOST="10.244.1.17:8000")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert "sessionid" not in response.cookies


def test_readyz_checks_the_database_and_redis(client: Any, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["doctor.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/readyz", HTTP_HOST="10.244.1.17:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_unavailable_while_redis_cannot_be_reached(client: Any, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("ConnectionError")


def test_healthz_still_answers(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
