"""The channel layer's wait always ends once cancelled, however often its own caller is cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels_redis import core

from dashboard.server.channel_layer import RedisChannelLayer, stop

pytestmark = pytest.mark.asyncio


async def test_a_wait_that_swallows_its_cancellation_still_ends_when_its_caller_is_cancelled_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stand-in for redis-py's wait: the race in which it swallows a cancellation on Python 3.11
    cannot be triggered on demand, so this one swallows the first three. Channels cancels the
    caller once when the socket closes, and the event loop cancels every task again when it
    shuts down: the second cancellation used to end the caller and leave the wait running."""
    inner: list[asyncio.Task[Any]] = []

    async def swallowing_receive(self: Any, channel: str) -> dict[str, str]:
        inner.append(asyncio.current_task())  # type: ignore[arg-type]
        swallowed = 0
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 3:
                    raise

    monkeypatch.setattr(core.RedisChannelLayer, "receive", swallowing_receive)
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1"])
    caller = asyncio.ensure_future(layer.receive("specific.abc!def"))
    await asyncio.sleep(0.05)
    caller.cancel()
    await asyncio.sleep(0.05)
    caller.cancel()
    done, _ = await asyncio.wait([caller], timeout=5)
    try:
        assert done and caller.cancelled()
        assert inner[0].done(), "the layer's wait is still running after its caller ended"
    finally:
        await stop(inner[0])  # (so that a failure here does not hang the event loop's shutdown)


async def test_a_message_is_returned_as_it_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    async def receive(self: Any, channel: str) -> dict[str, str]:
        await asyncio.sleep(0.01)
        return {"type": "node.changed"}

    monkeypatch.setattr(core.RedisChannelLayer, "receive", receive)
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1"])
    assert await layer.receive("specific.abc!def") == {"type": "node.changed"}
