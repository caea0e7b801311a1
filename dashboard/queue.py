"""Work handed to the Celery workers, sent by task name.

Domain code asks for work here and never imports ``dashboard.tasks`` (whose tasks call the
domain code): sending by name keeps the dependency one way.

A node's reports are checked by one ``dashboard.check_node`` task at a time in the queue:
``check_node`` sends a task only when none is waiting for that node (a Redis marker set
with NX); the task clears the marker before it reads the node's unchecked reports, so a
report stored after that read finds no marker and sends the next task. Reports that queue
up behind one task are therefore checked together, the newest one's facts and every
one's log lines, and the queue never holds more than one task per node.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app

from dashboard import live

log = logging.getLogger(__name__)

CHECK_NODE = "dashboard.check_node"
RUN_NOW = "dashboard.run_now"
RUN_SCHEDULE = "dashboard.run_schedule"
DELIVER_NOTIFICATIONS = "dashboard.deliver_notifications"
BUILD_BUNDLE = "dashboard.build_bundle"
# A marker outlives a lost task by this long at most: then the next report sends a new one.
MARKER_TTL = 120


def send(name: str, *args: Any) -> None:
    """Queue the task ``name`` with ``args``."""
    current_app.send_task(name, args=args)


def _marker(node_id: int) -> str:
    return f"wnd:check-queued:{node_id}"


def check_node(node_id: int, *, force: bool = False) -> bool:
    """Have the node's unchecked reports checked; return whether a task was sent (else one is waiting).

    ``force`` sends one whatever the marker says (the sweeper: the waiting task may have been lost).
    """
    marked = live.redis_client().set(_marker(node_id), 1, nx=not force, ex=MARKER_TTL)
    if not marked:
        return False
    try:
        send(CHECK_NODE, node_id)
    except Exception:
        live.redis_client().delete(_marker(node_id))  # the next report tries again
        raise
    return True


def check_taken(node_id: int) -> None:
    """Called by the task before it reads the node's reports: later reports need a task of their own."""
    live.redis_client().delete(_marker(node_id))
