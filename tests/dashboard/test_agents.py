"""The agents' WebSocket: token authentication, named requests out, answers back to the node page."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from agent.protocol import RequestError
from dashboard import agents
from dashboard.models import Node, enroll
from dashboard.routing import websocket_application

pytestmark = pytest.mark.django_db(transaction=True)


def agent_socket(token: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        websocket_application, "/ws/agent/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )


@pytest.mark.asyncio
async def test_an_agent_with_a_bad_token_is_refused() -> None:
    connected, code = await agent_socket("wnd_nope").connect()
    assert not connected and code == agents.CLOSE_BAD_TOKEN


@pytest.mark.asyncio
async def test_a_request_reaches_the_agent_and_its_result_reaches_the_node_page() -> None:
    node, token = await database_sync_to_async(enroll)("prod-eu", "win-a")
    socket = agent_socket(token)
    assert (await socket.connect())[0]
    assert await database_sync_to_async(agents.is_online)(node.pk)

    layer = get_channel_layer()
    page = await layer.new_channel()
    await layer.group_add("node.prod-eu.win-a", page)

    node = await database_sync_to_async(Node.objects.select_related("cluster").get)(pk=node.pk)
    record = await database_sync_to_async(agents.send_request)(node, "ping-vs-curl", {"target": "8.8.8.8"})
    sent = json.loads(await socket.receive_from(timeout=5))
    assert sent == {
        "type": "request",
        "id": record["id"],
        "name": "ping-vs-curl",
        "args": {"target": "8.8.8.8", "port": 80},
    }

    ping = {"kind": "ping", "target": "8.8.8.8", "origin": "node", "ok": False, "output": "Request timed out."}
    curl = {"kind": "curl", "target": "8.8.8.8", "origin": "node", "ok": True, "output": "HTTP/1.1 200 OK"}
    await socket.send_to(
        text_data=json.dumps({"type": "result", "id": record["id"], "ok": True, "results": [ping, curl]})
    )
    event = await layer.receive(page)
    while (
        event["type"] != "node.requests_changed"
        or not (await database_sync_to_async(agents.history)(node.pk))[0]["results"]
    ):
        event = await layer.receive(page)
    stored = (await database_sync_to_async(agents.history)(node.pk))[0]
    assert stored["state"] == "done" and [r["kind"] for r in stored["results"]] == ["ping", "curl"]

    await socket.disconnect()
    assert not await database_sync_to_async(agents.is_online)(node.pk)


@pytest.mark.asyncio
async def test_a_request_to_an_offline_agent_says_it_was_not_sent() -> None:
    node, _token = await database_sync_to_async(enroll)("prod-eu", "win-b")
    node = await database_sync_to_async(Node.objects.select_related("cluster").get)(pk=node.pk)
    record = await database_sync_to_async(agents.send_request)(node, "collect-now", {})
    assert record["state"] == "error" and "not connected" in record["error"]


@pytest.mark.asyncio
async def test_one_request_of_a_kind_is_in_flight_per_node() -> None:
    node, token = await database_sync_to_async(enroll)("prod-eu", "win-d")
    socket = agent_socket(token)
    assert (await socket.connect())[0]
    node = await database_sync_to_async(Node.objects.select_related("cluster").get)(pk=node.pk)
    send = database_sync_to_async(agents.send_request)
    first = await send(node, "collect-now", {})
    again = [await send(node, "collect-now", {}) for _ in range(20)]
    assert {r["id"] for r in again} == {first["id"]}  # twenty clicks, one request to the agent
    assert json.loads(await socket.receive_from(timeout=5))["id"] == first["id"]
    assert await socket.receive_nothing(timeout=0.2)
    ping = await send(node, "ping-vs-curl", {"target": "10.0.0.1"})  # another kind goes out
    assert json.loads(await socket.receive_from(timeout=5))["id"] == ping["id"]
    with pytest.raises(RequestError, match="already running on this node"):
        await send(node, "ping-vs-curl", {"target": "10.0.0.2"})

    await socket.send_to(text_data=json.dumps({"type": "result", "id": first["id"], "ok": True, "data": {}}))
    for _ in range(50):  # the consumer records the answer asynchronously
        record = await database_sync_to_async(agents.request_record)(node.pk, first["id"])
        if record is not None and record["state"] == "done":
            break
        await asyncio.sleep(0.05)
    after = await send(node, "collect-now", {})
    assert after["id"] != first["id"]  # once answered, a new request goes out
    await socket.disconnect()


@pytest.mark.asyncio
async def test_only_named_requests_with_valid_arguments_are_sent() -> None:
    node, _token = await database_sync_to_async(enroll)("prod-eu", "win-c")
    node = await database_sync_to_async(Node.objects.select_related("cluster").get)(pk=node.pk)
    with pytest.raises(RequestError, match="unknown request"):
        await database_sync_to_async(agents.send_request)(node, "run-command", {"cmd": "format c:"})
    with pytest.raises(RequestError, match="not a valid host name"):
        await database_sync_to_async(agents.send_request)(node, "ping-vs-curl", {"target": "8.8.8.8; rm -rf /"})


def test_the_node_page_sends_a_test_and_refuses_bad_arguments(client: Any, operator: Any) -> None:
    enroll("prod-eu", "win-d")
    client.force_login(operator)
    url = "/clusters/prod-eu/nodes/win-d/requests"
    response = client.post(url, {"request": "nodeport", "port": "80"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "from 30000 to 32767" in response.content.decode()
    response = client.post(url, {"request": "nodeport", "port": "30080"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    page = client.get("/clusters/prod-eu/nodes/win-d/").content.decode()
    assert "NodePort from the node" in page and "not connected" in page


@pytest.mark.asyncio
async def test_revoking_a_token_closes_its_agents_connection_at_once() -> None:
    node, token = await database_sync_to_async(enroll)("prod-eu", "win-r")
    socket = agent_socket(token)
    assert (await socket.connect())[0]
    assert await database_sync_to_async(agents.is_online)(node.pk)
    from django.core.management import call_command

    await database_sync_to_async(call_command)("revoke_token", "prod-eu", "win-r")
    closed = await socket.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": agents.CLOSE_REVOKED}
    assert not await database_sync_to_async(agents.is_online)(node.pk)  # the pages stop saying "connected"

    def page_says() -> str:
        from dashboard.pages.nodepage import node_context

        fresh = Node.objects.select_related("cluster").get(pk=node.pk)
        return str(node_context(fresh, None)["agent"]["text"])

    assert await database_sync_to_async(page_says)() == "reports refused: every token revoked"
    connected, code = await agent_socket(token).connect()
    assert not connected and code == agents.CLOSE_BAD_TOKEN
