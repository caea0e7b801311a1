"""Live updates: high-level events sent to channel-layer groups; consumers render them.

Every message carries a per-group sequence number (a Redis counter), so a
consumer that sees a gap knows messages were lost and re-sends the full state.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

FLEET_GROUP = "fleet"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def next_seq(group: str) -> int:
    return int(_redis().incr(f"wnd:seq:{group}"))


def publish(group: str, event: dict[str, Any]) -> None:
    """Send ``event`` (with ``type`` naming the consumer handler) and a sequence number."""
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(group, {**event, "seq": next_seq(group)})


def node_changed(node_id: int, group: str, *, findings_changed: bool) -> None:
    publish(group, {"type": "node.changed", "node_id": node_id, "findings_changed": findings_changed})
    publish(FLEET_GROUP, {"type": "fleet.changed", "node_id": node_id})


def run_progress(node_id: int, group: str, run_id: int, finding: dict[str, Any] | None = None) -> None:
    publish(group, {"type": "node.run_progress", "node_id": node_id, "run_id": run_id, "finding": finding})
