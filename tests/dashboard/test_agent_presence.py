"""Agent presence expires unless renewed by a live connection; what answers add to a request's record is capped."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from dashboard import agents, live
from dashboard.models import Node, enroll
from dashboard.routing import websocket_application

pytestmark = pytest.mark.django_db(transaction=True)


def agent_socket(token: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        websocket_application, "/ws/agent/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )


def presence_ttl(node_id: int) -> int:
    return int(live.redis_client().ttl(f"wnd:agent-online:{node_id}"))


@pytest.mark.asyncio
async def test_a_connected_agents_presence_expires_unless_renewed() -> None:
    node, token = await database_sync_to_async(enroll)("prod-eu", "win-p1")
    socket = agent_socket(token)
    assert (await socket.connect())[0]
    ttl = await database_sync_to_async(presence_ttl)(node.pk)
    assert 0 < ttl <= agents.PRESENCE_TTL
    await socket.disconnect()


def test_a_node_whose_web_process_died_is_not_connected_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    node, _token = enroll("prod-eu", "win-p2")
    monkeypatch.setattr(agents, "PRESENCE_TTL", 1)
    agents._mark_online(node.pk, "specific.dead-process!channel")  # connected, then nobody renews it
    assert agents.is_online(node.pk)
    time.sleep(2.2)
    assert not agents.is_online(node.pk)


@pytest.mark.asyncio
async def test_the_heartbeat_renews_presence_and_takes_it_back_after_a_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agents, "PRESENCE_TTL", 2)
    monkeypatch.setattr(agents, "HEARTBEAT", 0.2)
    node, token = await database_sync_to_async(enroll)("prod-eu", "win-p3")
    socket = agent_socket(token)
    assert (await socket.connect())[0]
    await database_sync_to_async(live.redis_client().delete)(f"wnd:agent-online:{node.pk}")  # e.g. Redis restarted
    await asyncio.sleep(3)  # longer than the TTL: only the heartbeat keeps it
    assert await database_sync_to_async(agents.is_online)(node.pk)
    await socket.disconnect()
    assert not await database_sync_to_async(agents.is_online)(node.pk)


def record_after(answers: list[dict[str, Any]]) -> dict[str, Any]:
    node, _token = enroll("prod-eu", "win-r1")
    node = Node.objects.select_related("cluster").get(pk=node.pk)
    agents._mark_online(node.pk, "specific.test!channel")
    record = agents.send_request(node, "collect-now", {})
    for answer in answers:
        agents.record_answer(node.pk, node.group, {"id": record["id"], **answer})
    found = agents.request_record(node.pk, record["id"])
    assert found is not None
    return found


def test_progress_messages_keep_only_the_latest() -> None:
    record = record_after([{"type": "progress", "message": f"step {i} " + "x" * 900} for i in range(500)])
    assert len(record["messages"]) == agents.MAX_MESSAGES
    assert record["messages"][-1].startswith("step 499 ")
    assert all(len(m) <= agents.MAX_MESSAGE_CHARS for m in record["messages"])


def test_a_result_with_huge_data_is_kept_without_it() -> None:
    huge = {
        "type": "result",
        "data": {"blob": "y" * 5_000_000},
        "results": [{"kind": "ping", "output": "z" * 100_000}] * 100,
    }
    record = record_after([huge])
    assert record["state"] == "done"
    assert "omitted" in record["data"]
    assert len(record["results"]) <= agents.MAX_RESULTS
    assert len(json.dumps(record)) <= agents.MAX_RECORD_CHARS
