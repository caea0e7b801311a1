"""The Redis channel layer, with a wait on it that always ends when the socket closes.

When a WebSocket closes, Channels cancels its consumer's wait for channel-layer messages and
waits for that to end. On Python 3.11, redis-py can swallow the cancellation: ``asyncio.wait_for``
returns the result of an operation that finished at the moment it was cancelled, and the layer
then waits again, 5 s at a time, for ever. A socket refused at once (an anonymous page, a revoked
agent token) is cancelled in exactly that window. Each one left a task and a Redis connection
behind, and the web server then waited for them at shutdown until it was killed.

Here the layer's own wait runs in a task of its own. When the consumer's wait is cancelled,
that task is cancelled again until it ends, and only then does the cancellation go on. A second
cancellation meanwhile (Channels cancels the consumer's wait once when the socket closes, the
event loop cancels every task again when it shuts down) does not cut that short.
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
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            await stop(waiting)
            raise


async def stop(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` until it has ended, whatever cancels the caller meanwhile."""
    while not task.done():
        task.cancel()
        try:
            await asyncio.wait([task], timeout=RECANCEL_EVERY)
        except asyncio.CancelledError:
            continue  # the caller is cancelled again: its own cancellation is already under way
