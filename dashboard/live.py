"""Live updates: high-level events sent to channel-layer groups; consumers render them.

Every message carries a per-group sequence number (a Redis counter), so a
consumer that sees a gap knows messages were lost and re-sends the full state;
and the epoch of the counters (``EPOCH_KEY``: the time Redis was first used
after it started empty), because a Redis restart without its data starts the
counters again at 1. A consumer that sees a newer epoch re-sends the full state,
and frames are cached by (epoch, sequence), so none from before a restart is
ever sent for a number reached again after it.

Publishing happens in Celery workers and views (sync code). Rather than
``async_to_sync`` per message (a new event loop and new Redis connections each
time), each process keeps one event loop in a background thread for the
channel layer, so connections are reused.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from functools import cache
from typing import Any, Protocol

import redis
from channels.layers import get_channel_layer
from django.conf import settings

FLEET_GROUP = "fleet"
EPOCH_KEY = "wnd:live:epoch"
_lock = threading.Lock()
log = logging.getLogger(__name__)


@cache
def redis_client() -> redis.Redis:
    """The process's Redis client (sequence numbers, agent presence and requests).

    A Redis that does not answer fails a call within seconds instead of holding the request,
    and with it the reports waiting to be written after it (``ingest.one_writer``).
    """
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5)


def _loop() -> asyncio.AbstractEventLoop:
    """The process's publishing loop, started on first use (and again after a fork)."""
    global _loop_state
    with _lock:
        import os

        pid = os.getpid()
        if _loop_state is None or _loop_state[0] != pid:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="live-publisher", daemon=True).start()
            _loop_state = (pid, loop)
        return _loop_state[1]


_loop_state: tuple[int, asyncio.AbstractEventLoop] | None = None


def publish_many(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send each (group, event) with the epoch and the group's next sequence number, in order.

    Connections kept from before a Redis restart fail once when next used: the messages are
    then sent again, on fresh connections (a consumer that sees them twice renders twice).
    """
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    try:
        _publish(layer, messages)
    except (redis.ConnectionError, ConnectionError) as exc:
        log.info("live messages sent again after a lost Redis connection: %s", exc)
        _publish(layer, messages)


def _publish(layer: Any, messages: list[tuple[str, dict[str, Any]]]) -> None:
    # One transaction: the epoch read is the one the counters belong to.
    pipe = redis_client().pipeline(transaction=True)
    pipe.set(EPOCH_KEY, time.time_ns() // 1000, nx=True)
    pipe.get(EPOCH_KEY)
    for group, _event in messages:
        pipe.incr(f"wnd:seq:{group}")
    _set, epoch, *seqs = pipe.execute()

    async def send() -> None:
        for (group, event), seq in zip(messages, seqs, strict=True):
            await layer.group_send(group, {**event, "epoch": int(epoch), "seq": int(seq)})

    asyncio.run_coroutine_threadsafe(send(), _loop()).result(timeout=10)


class Announced(Protocol):
    pk: Any

    @property
    def group(self) -> str: ...


def nodes_changed(nodes: Sequence[Announced]) -> None:
    """Tell the nodes' pages, and the fleet page once, that what they show changed."""
    if not nodes:
        return
    messages: list[tuple[str, dict[str, Any]]] = [(n.group, {"type": "node.changed", "node_id": n.pk}) for n in nodes]
    messages.append((FLEET_GROUP, {"type": "fleet.changed", "node_id": nodes[-1].pk}))
    publish_many(messages)


def run_progress(node_id: int, group: str, run_id: int, finding: dict[str, Any] | None = None) -> None:
    publish_many([(group, {"type": "node.run_progress", "node_id": node_id, "run_id": run_id, "finding": finding})])
