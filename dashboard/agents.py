"""The agents' WebSocket: on-demand requests to a node and their streamed answers.

The protocol is documented in ``agent/protocol.py``. The dashboard sends only the
named requests of that protocol, with arguments validated by the same code the
agent uses. Requests and their answers are kept in Redis for an hour (a short
history on the node page); connectivity results also arrive in the agent's next
report, where the checks read them.

One request of a kind is in flight per node: asking again while it runs returns
the request already under way (with other arguments, a clear refusal), so a
burst of "collect now" clicks costs the node one collection. A request whose
agent never answers stops counting after ``IN_FLIGHT_SECONDS``.

The logs a ``collect-bundle-logs`` result carries (up to 512 KiB per log) stay out of
that history: they are kept apart, bounded and for a few minutes, until the bundle
build that asked for them takes them (``take_bundle_logs``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from agent.protocol import REQUESTS, RequestError, validate_args
from agent.requests import BUNDLE_LOG_BYTES
from dashboard import live
from dashboard.cluster import enroll
from dashboard.models import Node

log = logging.getLogger(__name__)

CLOSE_BAD_TOKEN = 4401
CLOSE_REVOKED = 4403  # the token was revoked, or the node left the cluster, while the agent was connected
HISTORY = 10
TTL = 3600
# Presence: the key says "connected" for PRESENCE_TTL seconds and the connection's consumer renews
# it every HEARTBEAT seconds, so a web process that dies (no disconnect runs) leaves no node
# "connected" for more than PRESENCE_TTL.
PRESENCE_TTL = 90
HEARTBEAT = 30
# What an agent's answers may add to a request's record (it is rewritten on every answer).
MAX_MESSAGES = 50
MAX_MESSAGE_CHARS = 500
MAX_RESULTS = 20
MAX_DATA_CHARS = 64 * 1024
MAX_RECORD_CHARS = 256 * 1024
# Fresh logs of a collect-bundle-logs answer wait this long for the bundle build that asked for them.
BUNDLE_LOGS_TTL = 300
BUNDLE_LOGS_MAX_KINDS = 32
BUNDLE_LOGS_MAX_CHARS = BUNDLE_LOG_BYTES  # per log: what the agent sends
IN_FLIGHT_SECONDS = 120

LABELS = {
    "collect-now": "Collect now",
    "collect-bundle-logs": "Collect full logs",
    "ping-vs-curl": "ping vs curl",
    "nodeport": "NodePort from the node",
    "service-vip": "Service VIP from the node",
    "dns-lookup": "DNS lookups",
}


def agent_group(node: Node) -> str:
    return f"agent.{node.cluster.name}.{node.name}"


def token_group(token_id: int) -> str:
    """The connections made with one per-node token (closed when it is revoked)."""
    return f"agent-token.{token_id}"


def reviewed_group(node: Node) -> str:
    """The connections of a node made with reviewed ServiceAccount tokens (closed when the node leaves)."""
    return f"agent-reviewed.{node.cluster.name}.{node.name}"


def cut_off(groups: list[str], reason: str) -> None:
    """Close the open agent WebSockets of these groups at once; ``reason`` is logged and sent as the close reason."""
    try:
        live.publish_many([(group, {"type": "agent.revoked", "reason": reason}) for group in groups])
    except Exception:  # Redis down: the agents are refused at their next report or reconnection anyway
        log.warning("could not tell connected agents that they are cut off (%s)", reason, exc_info=True)


def tokens_revoked(node: Node, token_ids: list[int]) -> None:
    """Tokens of ``node`` were revoked: close their connections, and have the node and fleet pages say so now."""
    cut_off([token_group(pk) for pk in token_ids], "token revoked")
    try:
        live.nodes_changed([node])
    except Exception:  # Redis down: the pages show it at their next refresh
        log.warning("could not tell the pages that %s's tokens were revoked", node, exc_info=True)


def _online_key(node_id: int) -> str:
    return f"wnd:agent-online:{node_id}"


def _history_key(node_id: int) -> str:
    return f"wnd:agent-requests:{node_id}"


def is_online(node_id: int) -> bool:
    return bool(live.redis_client().exists(_online_key(node_id)))


def _in_flight_key(node_id: int, name: str) -> str:
    return f"wnd:agent-in-flight:{node_id}:{name}"


def _bundle_logs_key(node_id: int, request_id: str) -> str:
    return f"wnd:bundle-logs:{node_id}:{request_id}"


def history(node_id: int) -> list[dict[str, Any]]:
    """The node's recent requests, newest first."""
    raw = live.redis_client().hgetall(_history_key(node_id))
    items = [json.loads(v) for v in raw.values()]
    return sorted(items, key=lambda r: r["created"], reverse=True)[:HISTORY]


def _save(node_id: int, record: dict[str, Any]) -> None:
    client = live.redis_client()
    key = _history_key(node_id)
    client.hset(key, record["id"], json.dumps(record))
    client.expire(key, TTL)
    if client.hlen(key) > HISTORY * 2:
        for old in sorted(history(node_id), key=lambda r: r["created"])[:HISTORY]:
            client.hdel(key, old["id"])


def request_record(node_id: int, request_id: str) -> dict[str, Any] | None:
    """One request of the node's history (its state, error, ...), or None once expired."""
    raw = live.redis_client().hget(_history_key(node_id), request_id)
    return json.loads(raw) if raw is not None else None


def _keep_bundle_logs(node_id: int, request_id: str, logs: Any) -> None:
    """Keep the logs of a collect-bundle-logs answer for the bundle build, bounded in count and size."""
    kept: dict[str, dict[str, str]] = {}
    if isinstance(logs, dict):
        for kind, item in logs.items():
            if len(kept) >= BUNDLE_LOGS_MAX_KINDS:
                break
            if isinstance(kind, str) and isinstance(item, dict) and isinstance(item.get("text"), str):
                path = item.get("path")
                kept[kind[:64]] = {
                    "path": path[:1024] if isinstance(path, str) else "",
                    "text": item["text"][-BUNDLE_LOGS_MAX_CHARS:],
                }
    live.redis_client().set(_bundle_logs_key(node_id, request_id), json.dumps({"logs": kept}), ex=BUNDLE_LOGS_TTL)


def take_bundle_logs(node_id: int, request_id: str) -> dict[str, tuple[str, str]] | None:
    """The fresh logs (kind -> (Windows path, text)) answering ``request_id``, removed as they are read.

    None while the agent has not answered (or once they expired).
    """
    client = live.redis_client()
    key = _bundle_logs_key(node_id, request_id)
    with client.pipeline() as pipe:
        pipe.get(key)
        pipe.delete(key)
        raw, _deleted = pipe.execute()
    if raw is None:
        return None
    logs = json.loads(raw).get("logs", {})
    return {kind: (item["path"], item["text"]) for kind, item in logs.items()}


def send_request(node: Node, name: str, args: dict[str, Any], user: str = "") -> dict[str, Any]:
    """Validate and send a named request to the node's agent; return its record.

    Raises ``RequestError`` for an unknown request or bad arguments, with a
    message for the person who asked.
    """
    if name not in REQUESTS:
        raise RequestError(f"unknown request {name!r}")
    clean = validate_args(name, args)
    record: dict[str, Any] = {
        "id": f"r-{secrets.token_hex(6)}",
        "name": name,
        "label": LABELS[name],
        "args": clean,
        "user": user,
        "created": time.time(),
        "state": "sent",
        "messages": [],
        "results": [],
        "error": "",
    }
    if not is_online(node.pk):
        record["state"] = "error"
        record["error"] = "The agent of this node is not connected: the request was not sent."
        _save(node.pk, record)
    else:
        client = live.redis_client()
        key = _in_flight_key(node.pk, name)
        if not client.set(key, record["id"], nx=True, ex=IN_FLIGHT_SECONDS):
            held = client.get(key)
            current = request_record(node.pk, held.decode() if isinstance(held, bytes) else str(held))
            if current is not None and current["state"] in ("sent", "running"):
                if current["args"] == clean:
                    return current  # the same request is under way: its answer answers this one too
                raise RequestError(f"{LABELS[name]} is already running on this node; wait for its answer.")
            client.set(key, record["id"], ex=IN_FLIGHT_SECONDS)  # the holder finished or expired
        _save(node.pk, record)
        live.publish_many(
            [(agent_group(node), {"type": "agent.request", "id": record["id"], "name": name, "args": clean})]
        )
    live.publish_many([(node.group, {"type": "node.requests_changed", "node_id": node.pk})])
    return record


def record_answer(node_id: int, group: str, message: dict[str, Any]) -> None:
    """Apply an agent's progress/result/error message to the request it answers."""
    raw = live.redis_client().hget(_history_key(node_id), str(message.get("id", "")))
    if raw is None:
        return  # an answer to a request we no longer know (expired): nothing to show
    record = json.loads(raw)
    kind = message.get("type")
    if kind == "progress":
        record["state"] = "running"
        record["messages"] = [*record["messages"], str(message.get("message", ""))[:MAX_MESSAGE_CHARS]][-MAX_MESSAGES:]
    elif kind == "result":
        data = message.get("data")
        data = data if isinstance(data, dict) else {}
        if record["name"] == "collect-bundle-logs":
            # Kept before the record says "done", so that a reader seeing "done" finds them.
            _keep_bundle_logs(node_id, record["id"], data.get("logs"))
        results = message.get("results")
        record["state"] = "done"
        record["results"] = (
            [r for r in results if isinstance(r, dict)][:MAX_RESULTS] if isinstance(results, list) else []
        )
        record["data"] = _bounded_data({k: v for k, v in data.items() if k != "logs"})
    elif kind == "error":
        record["state"] = "error"
        record["error"] = str(message.get("error", "the agent refused the request"))[:MAX_MESSAGE_CHARS]
    _save(node_id, _bounded(record))
    if record["state"] in ("done", "error"):
        client = live.redis_client()
        key = _in_flight_key(node_id, record["name"])
        held = client.get(key)
        if held is not None and (held.decode() if isinstance(held, bytes) else held) == record["id"]:
            client.delete(key)
    live.publish_many([(group, {"type": "node.requests_changed", "node_id": node_id})])


def _bounded_data(data: dict[str, Any]) -> dict[str, Any]:
    """The result's extra data, or a note saying it was too large to keep."""
    size = len(json.dumps(data, default=str))
    return data if size <= MAX_DATA_CHARS else {"omitted": f"{size} characters of data: more than the record keeps"}


def _bounded(record: dict[str, Any]) -> dict[str, Any]:
    """The record within ``MAX_RECORD_CHARS``: its results and messages are cut first, then its data."""
    while len(json.dumps(record, default=str)) > MAX_RECORD_CHARS:
        if record.get("results"):
            record["results"] = record["results"][: len(record["results"]) // 2]
        elif len(record.get("messages", [])) > 1:
            record["messages"] = record["messages"][len(record["messages"]) // 2 :]
        elif record.get("data"):
            record["data"] = {"omitted": "more than the record keeps"}
        else:
            break
    return record


def _mark_online(node_id: int, channel_name: str) -> None:
    live.redis_client().set(_online_key(node_id), channel_name, ex=PRESENCE_TTL)


def _renew_online(node_id: int, channel_name: str) -> None:
    """Extend this connection's presence; take it back if it was lost (expired) while connected."""
    client = live.redis_client()
    current = client.get(_online_key(node_id))
    if current is None or current == channel_name.encode():
        client.set(_online_key(node_id), channel_name, ex=PRESENCE_TTL)


class AgentConsumer(AsyncWebsocketConsumer):
    """One connected agent; authenticated by its node token like the report API."""

    node: Node | None = None
    _heartbeat: asyncio.Future[None] | None = None
    groups_joined: list[str]

    async def connect(self) -> None:
        headers = dict(self.scope.get("headers", []))
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        found = await database_sync_to_async(self._authenticate)(token.strip() if scheme.lower() == "bearer" else "")
        if found is None:
            await self.close(code=CLOSE_BAD_TOKEN)
            return
        self.node, token_id = found
        self.groups_joined = [
            agent_group(self.node),
            token_group(token_id) if token_id is not None else reviewed_group(self.node),
        ]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        found = self.node
        await self.accept()
        await database_sync_to_async(_mark_online)(found.pk, self.channel_name)
        self._heartbeat = asyncio.ensure_future(self._beat())

    async def _beat(self) -> None:
        """Renew the node's presence every ``HEARTBEAT`` seconds while this connection lives."""
        assert self.node is not None
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await database_sync_to_async(_renew_online)(self.node.pk, self.channel_name)
            except Exception:  # Redis away for a moment: the next beat tries again
                log.warning("could not renew the presence of node %s", self.node.pk, exc_info=True)

    @staticmethod
    def _authenticate(raw: str) -> tuple[Node, int | None] | None:
        """The node, and the per-node token's id (None for a reviewed ServiceAccount token)."""
        if not raw:
            return None
        try:
            node, token = enroll.authenticate(raw)
        except enroll.Refused:
            return None
        return node, token.pk if token is not None else None

    async def disconnect(self, code: int) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self.node is not None:
            for group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)
            await database_sync_to_async(self._forget)()

    async def agent_revoked(self, event: dict[str, Any]) -> None:
        """The token was revoked or the node left the cluster: the agent is cut off now, not at its next report."""
        if self.node is not None:
            log.info("closing the agent connection of %s: %s", self.node, event.get("reason", ""))
            await database_sync_to_async(self._forget)()
        await self.close(code=CLOSE_REVOKED)

    def _forget(self) -> None:
        assert self.node is not None
        client = live.redis_client()
        if client.get(_online_key(self.node.pk)) == self.channel_name.encode():
            client.delete(_online_key(self.node.pk))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "")
        except ValueError:
            return  # not JSON: ignored, the protocol has nothing to answer
        if not isinstance(message, dict) or self.node is None:
            return
        if message.get("type") in {"progress", "result", "error"}:
            await database_sync_to_async(record_answer)(self.node.pk, self.node.group, message)

    async def agent_request(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"type": "request", **{k: event[k] for k in ("id", "name", "args")}}))
