"""WebSocket consumers: translate channel-layer events into HTML frames for htmx.

Each frame is the same partial template the page was first rendered with,
marked ``hx-swap-oob``. On connect, and whenever a sequence gap shows that
messages were lost, the consumer sends the full current state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from redis.exceptions import RedisError

from dashboard.access.roles import is_operator
from dashboard.live import FLEET_GROUP
from dashboard.models import DiagnosisRun, Node
from dashboard.pages.fleet import FleetQuery, fleet_context
from dashboard.pages.nodepage import node_context, run_basis

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class LiveConsumer(AsyncWebsocketConsumer):
    """Common handling: authentication, one group, sequence tracking, coalesced frames.

    A change is sent at once, then at most one frame per ``COALESCE`` seconds, each with the
    state as it is when it is rendered: when changes come faster than that (diagnosis catching
    up after an overload), browsers get fewer, newer frames, and never miss the last state.
    """

    group = ""
    epoch = 0  # of the sequence numbers (``live.EPOCH_KEY``): a new one after Redis lost its counters
    last_seq: int | None = None
    operator = False
    COALESCE = 0.2
    flush_at = 0.0
    pending: asyncio.TimerHandle | None = None

    async def join(self, group: str) -> bool:
        if not self.scope["user"].is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        self.operator = await database_sync_to_async(is_operator)(self.scope["user"])
        self.group = group
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except (RedisError, OSError):
            # Just after Redis restarts, the layer's pooled connection fails once before a new one
            # is made: one retry spares the page a failed handshake and its reconnect delay.
            await asyncio.sleep(0.2)
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        return True

    async def disconnect(self, code: int) -> None:
        if self.pending is not None:
            self.pending.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def changed(self, event: dict[str, Any]) -> None:
        """What a page shows changed: a full frame now, or at the end of the current window."""
        self.gap(event)  # every frame is the full state: a gap needs nothing more
        if self.pending is not None:
            return
        delay = max(0.0, self.flush_at + self.COALESCE - time.monotonic())
        self.pending = asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(self._flush()))

    async def _flush(self) -> None:
        self.pending = None
        self.flush_at = time.monotonic()
        await self.send_state()

    def gap(self, event: dict[str, Any]) -> bool:
        """Record the event's epoch and sequence number; true when the full state must be sent:
        messages were lost before it, or its epoch is new (Redis restarted empty, numbers restart)."""
        epoch, seq = int(event.get("epoch", 0)), int(event.get("seq", 0))
        if epoch != self.epoch:
            first = self.last_seq is None  # the state sent on connect is current: nothing was lost
            if epoch > self.epoch:
                self.epoch, self.last_seq = epoch, seq
            return not first  # a new epoch, or a late event of an older one: the current state is sent
        lost = self.last_seq is not None and seq > self.last_seq + 1
        self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)
        return lost

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The only message a browser sends is a request for the full state."""
        await self.send_state()

    async def send_state(self) -> None:
        raise NotImplementedError

    # Frames rendered for one (page, epoch, sequence number, role) are shared by every visitor of
    # that page in this process: a change is rendered once, not once per browser. The cache
    # holds the rendering task, not its result, because the visitors of a page receive an event
    # together: the ones that come while the first rendering runs wait for it instead of
    # starting their own.
    _frames: ClassVar[dict[tuple[Any, ...], asyncio.Future[str]]]
    FRAMES_KEPT = 256

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._frames = {}

    async def send_shared(self, page: Any, render: Callable[[], str]) -> None:
        """Send the frame of ``page`` at the last sequence number seen, rendering it if new.

        Before any event was seen (on connect) the state is rendered afresh: only a
        sequence number says two visitors would see the same thing. A failed rendering
        is not kept (the next visitor tries again).
        """
        if self.last_seq is None:
            await self.send(text_data=await database_sync_to_async(render)())
            return
        key = (page, self.epoch, self.last_seq, self.operator)
        shared = self._frames.get(key)
        if shared is None:
            if len(self._frames) >= self.FRAMES_KEPT:
                self._frames.clear()
            shared = self._frames[key] = asyncio.ensure_future(database_sync_to_async(render)())
        try:
            html = await asyncio.shield(shared)  # a visitor leaving does not cancel the others' frame
        except Exception:
            if self._frames.get(key) is shared:
                del self._frames[key]
            raise
        await self.send(text_data=html)


class FleetConsumer(LiveConsumer):
    """The fleet page: re-renders the visitor's filtered page of nodes when nodes change.

    Changes are coalesced (``LiveConsumer.changed``), and visitors of the same page in one
    process share the rendering.
    """

    async def connect(self) -> None:
        params = dict(parse_qsl(self.scope.get("query_string", b"").decode()))
        self.query = FleetQuery.from_params(params)
        if await self.join(FLEET_GROUP):
            await self.send_state()

    async def fleet_changed(self, event: dict[str, Any]) -> None:
        await self.changed(event)

    async def send_state(self) -> None:
        await self.send_shared(self.query.querystring(page=self.query.page), self._render)

    def _render(self) -> str:
        context = {**fleet_context(self.query), "oob": True, "is_operator": self.operator}
        return render_to_string("dashboard/fleet.html#fleet-live", context)


class NodeConsumer(LiveConsumer):
    """A node page: findings, facts, reports and the progress of an on-demand run."""

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        self.node_id = await database_sync_to_async(self._node_id)(kwargs["cluster"], kwargs["name"])
        if self.node_id is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if await self.join(f"node.{kwargs['cluster']}.{kwargs['name']}"):
            await self.send_state()

    @staticmethod
    def _node_id(cluster: str, name: str) -> int | None:
        return Node.objects.filter(cluster__name=cluster, name=name).values_list("id", flat=True).first()

    async def node_changed(self, event: dict[str, Any]) -> None:
        await self.changed(event)

    async def node_requests_changed(self, event: dict[str, Any]) -> None:
        self.gap(event)
        await self.send_state()

    async def node_run_progress(self, event: dict[str, Any]) -> None:
        if self.gap(event):
            await self.send_state()
            return
        html = await database_sync_to_async(self._render_progress)(event["run_id"], event.get("finding"))
        await self.send(text_data=html)

    async def node_bundle_progress(self, event: dict[str, Any]) -> None:
        """A bundle of this node progressed: operators (the only ones shown bundles) get its status."""
        if self.gap(event):
            await self.send_state()
            return
        if self.operator:
            html = await database_sync_to_async(self._render_bundle)(event["bundle_id"])
            await self.send(text_data=html)

    def _render_bundle(self, bundle_id: int) -> str:
        from dashboard.models import Bundle

        context = {"bundle": Bundle.objects.filter(pk=bundle_id).first(), "oob": True}
        return render_to_string("dashboard/node.html#bundle-status", context)

    async def send_state(self) -> None:
        await self.send_shared(self.node_id, self._render_state)

    def _render_state(self) -> str:
        node = Node.objects.select_related("cluster").get(pk=self.node_id)
        context = {**node_context(node, self.scope["user"]), "oob": True}
        return render_to_string("dashboard/node.html#node-live", context)

    def _render_progress(self, run_id: int, finding: dict[str, Any] | None) -> str:
        run = DiagnosisRun.objects.select_related("node__cluster").filter(pk=run_id).first()
        if run is None:
            return ""
        context = {"node": run.node, "run": run, "run_basis": run_basis(run), "streamed": finding, "oob": True}
        return render_to_string("dashboard/node.html#run-progress-live", context)
