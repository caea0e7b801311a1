"""A request whose body stalls is answered 408; a body that keeps coming is served as usual."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dashboard.asgi import application


def http_scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"content-type", b"application/x-www-form-urlencoded")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


async def serve(method: str, path: str, chunks: list[bytes], *, stall: bool) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    queue = [
        {"type": "http.request", "body": chunk, "more_body": stall or i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await never.wait()  # the client sends nothing more, and does not hang up
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(application(http_scope(method, path), receive, send), timeout=30)
    return sent


@pytest.mark.asyncio
async def test_a_stalled_body_is_answered_408(settings: Any) -> None:
    settings.WND_BODY_IDLE_TIMEOUT = 0.5
    sent = await serve("POST", "/login/", [b"username=a&pass"], stall=True)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
    assert b"stopped arriving" in sent[1]["body"]
    assert len(sent) == 2  # nothing from Django after the 408


@pytest.mark.asyncio
async def test_a_body_that_keeps_coming_is_served(settings: Any) -> None:
    settings.WND_BODY_IDLE_TIMEOUT = 0.5
    sent = await serve("GET", "/login/", [b"", b""], stall=False)
    assert sent[0]["status"] == 200
