"""The live consumers, through Channels' WebsocketCommunicator and the real Redis channel layer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from dashboard.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED, FleetConsumer, NodeConsumer
from dashboard.models import DiagnosisRun, Node, enroll
from dashboard.routing import websocket_application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def communicator(consumer: Any, path: str, user: Any, **route: str) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(consumer.as_asgi(), path)
    comm.scope["user"] = user
    comm.scope["url_route"] = {"kwargs": route}
    return comm


async def test_the_fleet_consumer_sends_the_current_state_on_connect(viewer: Any) -> None:
    await database_sync_to_async(enroll)("prod-eu", "win-a")
    comm = communicator(FleetConsumer, "/ws/fleet/", viewer)
    connected, _ = await comm.connect()
    assert connected
    frame = await comm.receive_from(timeout=5)
    assert 'id="fleet-table" hx-swap-oob="morph"' in frame and "win-a" in frame
    await comm.disconnect()


async def test_an_anonymous_visitor_is_refused() -> None:
    comm = communicator(FleetConsumer, "/ws/fleet/", AnonymousUser())
    connected, code = await comm.connect()
    assert not connected and code == CLOSE_UNAUTHENTICATED


async def serve_like_uvicorn(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[bool, list[str]]:
    """One socket through the whole application, its disconnect queued the moment the application
    closes it (as uvicorn does): whether the application ended within 5 s, and what it sent."""
    scope = {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "subprotocols": [],
    }
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])
        if message["type"] == "websocket.close":
            incoming.put_nowait({"type": "websocket.disconnect", "code": 1006})

    application = asyncio.ensure_future(websocket_application(scope, incoming.get, send))
    ended, _ = await asyncio.wait([application], timeout=5)  # (not wait_for: it may return once cancelled)
    return bool(ended), sent


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/ws/fleet/", [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:8000")]),
        ("/ws/agent/", [(b"host", b"127.0.0.1:8000"), (b"authorization", b"Bearer wnd_nope")]),
    ],
    ids=["anonymous page", "bad agent token"],
)
async def test_a_refused_socket_leaves_nothing_running(path: str, headers: list[tuple[bytes, bytes]]) -> None:
    """Measured with channels_redis's own layer: 5 cases out of 6 (three runs of these two) left an
    application running for ever, and uvicorn waited for it at shutdown until it was killed."""
    for _attempt in range(5):
        ended, sent = await serve_like_uvicorn(path, headers)
        assert ended, "the application of a refused socket is still running"
        assert sent == ["websocket.close"]


async def test_an_unknown_node_is_refused(viewer: Any) -> None:
    comm = communicator(NodeConsumer, "/ws/x/", viewer, cluster="prod-eu", name="nope")
    connected, code = await comm.connect()
    assert not connected and code == CLOSE_NOT_FOUND


async def test_the_fleet_consumer_coalesces_changes_into_one_frame(viewer: Any) -> None:
    node, _ = await database_sync_to_async(enroll)("prod-eu", "win-a")
    comm = communicator(FleetConsumer, "/ws/fleet/", viewer)
    await comm.connect()
    await comm.receive_from(timeout=5)
    layer = get_channel_layer()
    started = time.monotonic()
    for seq in range(1, 21):
        await layer.group_send("fleet", {"type": "fleet.changed", "node_id": node.pk, "seq": seq})
    sending = time.monotonic() - started
    frames = [await comm.receive_from(timeout=5)]
    quiet_by = time.monotonic() + 10  # bounded: a stray publisher on the test Redis fails the test, not hangs it
    while time.monotonic() < quiet_by and not await comm.receive_nothing(timeout=0.5):
        frames.append(await comm.receive_from())
    # The first change is sent at once; the rest make at most one frame per window.
    assert 1 <= len(frames) <= 2 + int(sending / FleetConsumer.COALESCE) < 20
    assert all("win-a" in f for f in frames)
    await comm.disconnect()


async def test_a_sequence_gap_makes_the_node_consumer_resend_the_full_state(viewer: Any) -> None:
    node, _ = await database_sync_to_async(enroll)("prod-eu", "win-a")
    run = await database_sync_to_async(DiagnosisRun.objects.create)(node=node, trigger="manual", checks_total=10)
    comm = communicator(NodeConsumer, "/ws/n/", viewer, cluster="prod-eu", name="win-a")
    await comm.connect()
    assert 'id="node-findings"' in await comm.receive_from(timeout=5)
    layer = get_channel_layer()
    group = "node.prod-eu.win-a"
    finding = {"check": "flannel.subnet-env-missing", "severity": "critical", "title": "t", "summary": "s"}
    await layer.group_send(group, {"type": "node.run_progress", "run_id": run.pk, "finding": finding, "seq": 1})
    progress = await comm.receive_from(timeout=5)
    assert 'id="run-status"' in progress and "beforeend:#run-stream" in progress
    await layer.group_send(group, {"type": "node.run_progress", "run_id": run.pk, "finding": None, "seq": 5})
    assert 'id="node-findings"' in await comm.receive_from(timeout=5)  # lost 2..4: full state instead
    await comm.disconnect()


async def test_a_browser_may_ask_for_the_full_state(viewer: Any) -> None:
    await database_sync_to_async(enroll)("prod-eu", "win-a")
    comm = communicator(NodeConsumer, "/ws/n/", viewer, cluster="prod-eu", name="win-a")
    await comm.connect()
    await comm.receive_from(timeout=5)
    await comm.send_to(text_data='{"type": "resync"}')
    assert 'id="node-head"' in await comm.receive_from(timeout=5)
    await comm.disconnect()
    assert await database_sync_to_async(Node.objects.count)() == 1


async def test_a_node_removed_while_its_page_is_open_closes_the_page_socket_as_not_found(viewer: Any) -> None:
    node, _ = await database_sync_to_async(enroll)("prod-eu", "win-a")
    comm = communicator(NodeConsumer, "/ws/n/", viewer, cluster="prod-eu", name="win-a")
    await comm.connect()
    await comm.receive_from(timeout=5)
    await database_sync_to_async(Node.objects.filter(pk=node.pk).delete)()
    await comm.send_to(text_data='{"type": "resync"}')
    assert (await comm.receive_output(timeout=5)) == {"type": "websocket.close", "code": CLOSE_NOT_FOUND}


async def test_visitors_of_a_node_page_share_one_rendering_of_a_change(viewer: Any, monkeypatch: Any) -> None:
    await database_sync_to_async(enroll)("prod-eu", "win-a")
    rendered: list[int] = []
    render_state = NodeConsumer._render_state

    def counting(self: NodeConsumer) -> str:
        rendered.append(1)
        return render_state(self)

    monkeypatch.setattr(NodeConsumer, "_render_state", counting)
    comms = [communicator(NodeConsumer, "/ws/x/", viewer, cluster="prod-eu", name="win-a") for _ in range(5)]
    for comm in comms:
        await comm.connect()
        await comm.receive_from(timeout=5)
    rendered.clear()

    await get_channel_layer().group_send("node.prod-eu.win-a", {"type": "node.changed", "seq": 4242})
    frames = [await comm.receive_from(timeout=5) for comm in comms]

    assert len(set(frames)) == 1 and "win-a" in frames[0]
    assert len(rendered) == 1  # the five arrived together: one rendered, four waited for it
    for comm in comms:
        await comm.disconnect()


async def test_a_new_epoch_of_the_sequence_numbers_asks_for_the_full_state() -> None:
    consumer = NodeConsumer()
    assert not consumer.gap({"epoch": 100, "seq": 41})  # the first event after connect
    assert not consumer.gap({"epoch": 100, "seq": 42})
    # Redis restarted without its data: the numbers start again at 1, in a newer epoch.
    assert consumer.gap({"epoch": 200, "seq": 1})
    assert (consumer.epoch, consumer.last_seq) == (200, 1)
    assert not consumer.gap({"epoch": 200, "seq": 2})
    assert consumer.gap({"epoch": 100, "seq": 43})  # a late event of the old epoch: resync, keep the new one
    assert (consumer.epoch, consumer.last_seq) == (200, 2)


async def test_a_frame_cached_before_a_redis_restart_is_not_sent_for_the_same_number_after_it(viewer: Any) -> None:
    node, _ = await database_sync_to_async(enroll)("prod-eu", "win-a")
    comm = communicator(NodeConsumer, "/ws/x/", viewer, cluster="prod-eu", name="win-a")
    await comm.connect()
    await comm.receive_from(timeout=5)
    layer = get_channel_layer()
    await layer.group_send(node.group, {"type": "node.changed", "node_id": node.pk, "epoch": 1, "seq": 7})
    before = await comm.receive_from(timeout=5)
    await database_sync_to_async(Node.objects.filter(pk=node.pk).update)(os_build="10.0.20348.2700")
    # After the restart, number 7 is reached again: the frame is rendered anew, not taken from the cache.
    await layer.group_send(node.group, {"type": "node.changed", "node_id": node.pk, "epoch": 2, "seq": 7})
    after = await comm.receive_from(timeout=5)
    assert "10.0.20348.2700" not in before and "10.0.20348.2700" in after
    await comm.disconnect()
