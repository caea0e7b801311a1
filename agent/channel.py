"""The agent's side of the on-demand request channel (protocol: ``agent.protocol``).

Runs in its own thread with the synchronous ``websockets`` client, so the
collection loop and the channel never block each other. Requests run in a
bounded pool: at most ``MAX_WORKERS`` at once and ``MAX_PENDING`` accepted in
all; beyond that a request is refused with a message saying the agent is busy.
"collect now" requests that arrive while a collection they asked for is
running or waiting join it: one collection answers them all. Answers are sent
under a lock.

The connection goes through the proxy of ``HTTPS_PROXY`` (``HTTP_PROXY`` for a
plain ``ws://``) unless ``NO_PROXY`` names the dashboard: the same rules as
the report POSTs (``urllib.request.getproxies`` and ``proxy_bypass``).
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from agent import __version__
from agent.protocol import REQUESTS, Request, RequestError, message, parse_request
from agent.requests import execute

if TYPE_CHECKING:
    from agent.app import Agent
    from agent.config import AgentConfig

log = logging.getLogger(__name__)
MAX_WORKERS = 4
MAX_PENDING = 16


def channel_url(dashboard: str) -> str:
    base = dashboard.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws/agent/"
    return "ws://" + base.removeprefix("http://") + "/ws/agent/"


class Channel:
    def __init__(self, agent: Agent, config: AgentConfig, stop: threading.Event) -> None:
        self.agent = agent
        self.config = config
        self.stop = stop
        self.url = channel_url(config.dashboard)
        self._send_lock = threading.Lock()
        self.connected = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="request")
        self._slots = threading.BoundedSemaphore(MAX_PENDING)
        self._collect_lock = threading.Lock()
        self._collect_ids: list[str] | None = None  # requests answered by the collection in flight

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.url.startswith("wss://"):
            return None
        context = ssl.create_default_context(cafile=self.config.ca_bundle or None)
        if not self.config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def run(self) -> None:
        """Connect, serve requests, reconnect with backoff until ``stop`` is set."""
        attempt = 0
        while not self.stop.is_set():
            try:
                with connect(
                    self.url,
                    ssl=self._ssl(),
                    additional_headers={"Authorization": f"Bearer {self.config.resolved_token()}"},
                    user_agent_header=f"windows-node-doctor-agent/{__version__}",
                    open_timeout=10,
                    proxy=True,  # HTTPS_PROXY / NO_PROXY, as urllib reads them for the reports
                ) as ws:
                    attempt = 0
                    self._serve(ws)
            except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed, TimeoutError) as exc:
                log.info("request channel to %s unavailable: %s", self.url, exc)
            finally:
                self.connected.clear()
            delay = min(60.0, 2.0**attempt) * (0.5 + random.random() / 2)
            attempt = min(attempt + 1, 6)
            self.stop.wait(delay)

    def _serve(self, ws: ClientConnection) -> None:
        identity = self.agent.runner.identity()
        ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "cluster": self.config.cluster or identity.get("cluster", ""),
                    "node": self.config.node or identity.get("node") or self.config.resolved_node(),
                    "agent_version": __version__,
                    "requests": list(REQUESTS),
                }
            )
        )
        self.connected.set()
        while not self.stop.is_set():
            try:
                raw = ws.recv(timeout=1.0)
            except TimeoutError:
                continue
            self._dispatch(ws, raw)

    def _send(self, ws: ClientConnection, text: str) -> None:
        with self._send_lock:
            try:
                ws.send(text)
            except ConnectionClosed:
                log.info("request channel closed before an answer could be sent")

    def _dispatch(self, ws: ClientConnection, raw: str | bytes) -> None:
        """Validate, coalesce "collect now", and queue the request in the bounded pool."""
        req_id = _peek_id(raw)
        try:
            request = parse_request(raw)
        except RequestError as exc:
            log.warning("refused request %s: %s", req_id, exc)
            self._send(ws, message("error", req_id, error=str(exc)))
            return
        if request.name == "collect-now":
            with self._collect_lock:
                if self._collect_ids is not None:
                    self._collect_ids.append(request.id)
                    self._send(ws, message("progress", request.id, message="joined the collection already under way"))
                    return
                self._collect_ids = [request.id]
        if not self._slots.acquire(blocking=False):
            if request.name == "collect-now":
                with self._collect_lock:
                    self._collect_ids = None
            busy = f"the agent is busy: {MAX_PENDING} requests are running or waiting; try again shortly"
            self._send(ws, message("error", request.id, error=busy))
            return
        self._pool.submit(self._run, ws, request)

    def _run(self, ws: ClientConnection, request: Request) -> None:
        try:
            try:
                fields = execute(
                    request, self.agent, lambda text: self._send(ws, message("progress", request.id, message=text))
                )
                answer = dict(type="result", name=request.name, ok=True, **fields)
            except Exception as exc:  # report it to the dashboard; the channel stays up
                log.exception("request %s (%s) failed", request.id, request.name)
                answer = {"type": "error", "error": f"{request.name} failed: {exc}"}
                fields = {}
            ids = [request.id]
            if request.name == "collect-now":
                with self._collect_lock:
                    ids, self._collect_ids = self._collect_ids or ids, None
            for result in fields.get("results", []):
                self.agent.add_connectivity(result)
            for req_id in ids:
                self._send(ws, json.dumps({**answer, "id": req_id}))
        finally:
            self._slots.release()


def _peek_id(raw: str | bytes) -> str:
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    value = data.get("id") if isinstance(data, dict) else None
    return value[:64] if isinstance(value, str) else ""


def run_channel_thread(agent: Agent, config: AgentConfig, stop: threading.Event) -> threading.Thread:
    channel = Channel(agent, config, stop)
    thread = threading.Thread(target=channel.run, name="request-channel", daemon=True)
    thread.start()
    return thread
