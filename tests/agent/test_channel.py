from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.server import ServerConnection, serve

from agent.app import Agent
from agent.channel import Channel, channel_url
from agent.config import AgentConfig
from agent.protocol import RequestError, parse_request
from agent.scenario import ScenarioRunner

from .conftest import SCENARIOS


class AgentSocketServer:
    """A real websockets server on 127.0.0.1 standing in for the dashboard's /ws/agent/."""

    def __init__(self) -> None:
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.outbox: queue.Queue[str] = queue.Queue()
        self.headers: dict[str, str] = {}
        self.paths: list[str] = []

        def handler(ws: ServerConnection) -> None:
            self.headers = {"Authorization": ws.request.headers.get("Authorization", "")}
            self.paths.append(ws.request.path)
            while True:
                try:
                    self.inbox.put(json.loads(ws.recv(timeout=0.05)))
                except TimeoutError:
                    pass
                except Exception:
                    return
                while not self.outbox.empty():
                    ws.send(self.outbox.get())

        self.server = serve(handler, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.socket.getsockname()[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def request(self, req_id: str, name: str, args: dict[str, Any] | None = None, raw: str | None = None) -> None:
        self.outbox.put(raw or json.dumps({"type": "request", "id": req_id, "name": name, "args": args or {}}))

    def answers(self, req_id: str) -> list[dict[str, Any]]:
        """Messages about ``req_id`` up to its result or error."""
        got = []
        while True:
            msg = self.inbox.get(timeout=10)
            if msg.get("id") != req_id:
                continue
            got.append(msg)
            if msg["type"] in ("result", "error"):
                return got


@pytest.fixture
def channel(tmp_path: Path, dashboard):
    server = AgentSocketServer()
    cfg = AgentConfig(dashboard=server.url, token="s3cret", state_dir=str(tmp_path / "state"))
    agent = Agent(cfg, ScenarioRunner(SCENARIOS / "healthy" / "scenario.json", tmp_path / "replay"))
    agent.sender.url = dashboard.url + "/api/v1/reports"  # reports go to the HTTP dashboard
    stop = threading.Event()
    ch = Channel(agent, cfg, stop)
    thread = threading.Thread(target=ch.run, daemon=True)
    thread.start()
    assert ch.connected.wait(10)
    yield server, agent
    stop.set()
    thread.join(5)
    server.server.shutdown()


def test_it_connects_with_the_bearer_token_and_says_hello(channel) -> None:
    server, _agent = channel
    hello = server.inbox.get(timeout=5)
    assert hello["type"] == "hello" and hello["node"] == "win-prod-01" and "ping-vs-curl" in hello["requests"]
    assert server.headers["Authorization"] == "Bearer s3cret"
    assert server.paths == ["/ws/agent/"]


def test_ping_vs_curl_sends_progress_then_connectivity_results(channel) -> None:
    server, agent = channel
    server.request("r-1", "ping-vs-curl", {"target": "10.96.0.1", "port": 443})
    answers = server.answers("r-1")
    assert [a["type"] for a in answers] == ["progress", "progress", "result"]
    result = answers[-1]
    assert result["ok"] is True
    kinds = [(r["kind"], r["target"], r["ok"]) for r in result["results"]]
    assert kinds == [("ping", "10.96.0.1", True), ("curl", "10.96.0.1:443", True)]
    assert len(agent._connectivity) == 2  # attached to the next report


def test_collect_now_sends_a_report_at_once(channel, dashboard) -> None:
    server, _agent = channel
    server.request("r-2", "collect-now")
    result = server.answers("r-2")[-1]
    assert result["data"] == {"sequence": 1, "sent": True}
    assert dashboard.reports[0]["node"] == "win-prod-01"


def test_dns_lookup_marks_partial_names(channel) -> None:
    server, _agent = channel
    server.request("r-3", "dns-lookup", {"names": ["kubernetes.default", "kubernetes.default.svc.cluster.local."]})
    results = server.answers("r-3")[-1]["results"]
    assert [r["detail"]["qualified"] for r in results] == ["partial", "fqdn"]


@pytest.mark.parametrize(
    ("name", "args", "error"),
    [
        ("format-disk", {}, "unknown request 'format-disk'"),
        ("ping-vs-curl", {"target": "8.8.8.8; Remove-Item C:\\k -Recurse"}, "not a valid host name"),
        ("ping-vs-curl", {"target": "$(hostname)"}, "not a valid host name"),
        ("ping-vs-curl", {"target": "-n 1000 10.0.0.1"}, "not a valid host name"),
        ("service-vip", {"ip": "10.96.0.10 & calc", "port": 53}, "is not an IP address"),
        ("service-vip", {"ip": "10.96.0.10", "port": "53"}, "port must be an integer"),
        ("service-vip", {"ip": "10.96.0.10", "port": 80, "protocol": "dns"}, "probed on port 53"),
        ("service-vip", {"ip": "10.96.0.10", "port": 53, "protocol": "udp"}, "protocol must be tcp, dns or dns-tcp"),
        ("nodeport", {"port": 80}, "from 30000 to 32767"),
        ("collect-now", {"extra": 1}, "does not take extra"),
        ("dns-lookup", {"names": []}, "names must be a list"),
    ],
)
def test_anything_else_is_refused_with_a_message(channel, name: str, args: dict[str, Any], error: str) -> None:
    server, agent = channel
    server.request("r-x", name, args)
    [answer] = server.answers("r-x")
    assert answer["type"] == "error" and error in answer["error"]
    assert agent._connectivity == []


def test_a_frame_that_is_not_json_is_refused(channel) -> None:
    server, _agent = channel
    server.request("", "", raw="ping 8.8.8.8")
    while True:
        msg = server.inbox.get(timeout=5)
        if msg["type"] == "error":
            break
    assert msg["error"] == "the message is not JSON"


def test_parse_request_validates_without_a_connection() -> None:
    req = parse_request(json.dumps({"type": "request", "id": "a", "name": "nodeport", "args": {"port": 30080}}))
    assert req.args == {"port": 30080, "node_ip": "127.0.0.1"}
    with pytest.raises(RequestError):
        parse_request(json.dumps({"type": "request", "id": "a b", "name": "collect-now"}))


def test_the_channel_url_follows_the_dashboard_scheme() -> None:
    assert channel_url("https://doctor.example.com/") == "wss://doctor.example.com/ws/agent/"
    assert channel_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws/agent/"


def test_collect_now_requests_that_arrive_together_share_one_collection(channel, dashboard) -> None:
    server, _agent = channel
    for n in range(40):
        server.request(f"c-{n}", "collect-now")
    answers: dict[str, dict[str, Any]] = {}  # answers come in any order: gather them all
    while len(answers) < 40:
        msg = server.inbox.get(timeout=20)
        if msg.get("type") in ("result", "error"):
            answers[msg["id"]] = msg
    results = list(answers.values())
    assert all(r["type"] == "result" for r in results)
    sequences = {r["data"]["sequence"] for r in results}
    assert len(sequences) < 40  # 40 answers, fewer collections
    assert len(dashboard.reports) == len(sequences)


def test_requests_beyond_the_pool_are_refused_as_busy(channel, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.channel as channel_module

    server, _agent = channel
    release = threading.Event()

    def slow(request: Any, agent: Any, progress: Any) -> dict[str, Any]:
        release.wait(10)  # a request that takes its time, as a curl to a dead address does
        return {"results": []}

    monkeypatch.setattr(channel_module, "execute", slow)
    total = channel_module.MAX_PENDING + 5
    for n in range(total):
        server.request(f"p-{n}", "ping-vs-curl", {"target": "10.0.0.1"})
    refused = [server.answers(f"p-{n}")[-1] for n in range(channel_module.MAX_PENDING, total)]
    assert all(a["type"] == "error" and "the agent is busy" in a["error"] for a in refused)
    release.set()
    finished: dict[str, str] = {}  # answers come in any order: gather them all
    while len(finished) < channel_module.MAX_PENDING:
        msg = server.inbox.get(timeout=10)
        if msg.get("type") in ("result", "error"):
            finished[msg["id"]] = msg["type"]
    assert finished == {f"p-{n}": "result" for n in range(channel_module.MAX_PENDING)}


class ConnectProxy:
    """A real HTTP CONNECT proxy on 127.0.0.1 that records where it was asked to connect."""

    def __init__(self) -> None:
        import socket

        self.targets: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(4096)
            target = head.split(b" ")[1].decode()
            self.targets.append(target)
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass


@pytest.mark.parametrize("bypass", [False, True])
def test_the_channel_goes_through_https_proxy_unless_no_proxy_names_the_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bypass: bool
) -> None:
    proxy, server = ConnectProxy(), AgentSocketServer()
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    if bypass:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    cfg = AgentConfig(dashboard=server.url, token="s3cret", state_dir=str(tmp_path / "state"))
    agent = Agent(cfg, ScenarioRunner(SCENARIOS / "healthy" / "scenario.json", tmp_path / "replay"))
    stop = threading.Event()
    ch = Channel(agent, cfg, stop)
    thread = threading.Thread(target=ch.run, daemon=True)
    thread.start()
    try:
        assert ch.connected.wait(10)
        assert server.inbox.get(timeout=5)["type"] == "hello"
        port = server.url.rsplit(":", 1)[1]
        assert proxy.targets == ([] if bypass else [f"127.0.0.1:{port}"])
    finally:
        stop.set()
        thread.join(5)
        server.server.shutdown()
        proxy.sock.close()
