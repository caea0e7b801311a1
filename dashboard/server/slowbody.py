"""A request body must keep arriving: one that stalls is answered 408 and its connection closed.

uvicorn has no body timeout of its own, so a client that sends headers, then a byte now and
then, would hold a connection (and Django's wait for the body) for ever. This ASGI wrapper
waits at most ``WND_BODY_IDLE_TIMEOUT`` seconds for each next piece of a request body; a
large upload at any working speed is unaffected, a stalled one is cut off.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings

Scope = dict[str, Any]


class BodyIdleTimeout:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = {"more": True, "answered": False}

        async def guarded_receive() -> dict[str, Any]:
            if not state["more"]:
                return await receive()  # the body is in: waiting for a disconnect is Django's business
            try:
                message: dict[str, Any] = await asyncio.wait_for(receive(), timeout=settings.WND_BODY_IDLE_TIMEOUT)
            except TimeoutError:
                await _refuse(send)
                state["answered"] = True
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["more"] = bool(message.get("more_body"))
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not state["answered"]:
                await send(message)

        return await self.app(scope, guarded_receive, guarded_send)


async def _refuse(send: Any) -> None:
    body = f"The request body stopped arriving for {settings.WND_BODY_IDLE_TIMEOUT} s.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
