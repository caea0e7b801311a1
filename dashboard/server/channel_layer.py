"""The Redis channel layer, with a wait on it that always ends when the socket closes.

When a WebSocket closes, Channels cancels its consumer's wait for channel-layer messages and
waits for that to end. On Python 3.11, redis-py can swallow the cancellation: ``asyncio.wait_for``
returns the result of an operation that finished at the moment it was cancelled, and the layer
then waits again, 5 s at a time, for ever. A socket refused at once (an anonymous page, a revoked
agent token) is cancelled in exactly that window. Each one left a task and a Redis connection
behind, and the web server then waited for them at shutdown until it was killed.

Here the layer's own wait runs in a task of its own. When the consumer's wait is cancelled,
that task is cancelled again until it ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis import core

RECANCEL_EVERY = 0.1  # seconds


class RedisChannelLayer(core.RedisChannelLayer):
    async def receive(self, channel: str) -> Any:
        waiting = asyncio.ensure_future(super().receive(channel))
        try:
            await asyncio.wait([waiting])
        finally:
            while not waiting.done():
                waiting.cancel()
                await asyncio.wait([waiting], timeout=RECANCEL_EVERY)
        return waiting.result()
