from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from tests.dashboard.reports import make_report


@pytest.fixture
def enrolled(db: Any) -> tuple[Any, str]:
    """A node of cluster prod-eu with a fresh token: (node, raw token)."""
    from dashboard.models import enroll

    return enroll("prod-eu", "win-node-01")


@pytest.fixture
def post_report(client: Any, enrolled: tuple[Any, str]) -> Any:
    """Post a report (a dict, or raw bytes) with the enrolled node's token."""
    _node, token = enrolled

    def post(body: Any = None, *, token: str = token, gzipped: bool = False, **headers: Any) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else make_report()).encode()
        if gzipped:
            data = gzip.compress(data)
            headers.setdefault("HTTP_CONTENT_ENCODING", "gzip")
        return client.post(
            "/api/v1/reports",
            data=data,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            **headers,
        )

    return post
