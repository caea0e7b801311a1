"""A tiny Kubernetes API server on 127.0.0.1 for watch tests: the API's JSON and watch streams.

It serves a ``SimulatedSource`` over HTTP the way kube-apiserver does: paged
lists (``limit``/``continue``, one resource version for all pages), watch
streams of JSON lines (``watch=true``, ``resourceVersion``, ``timeoutSeconds``),
an ``ERROR`` event with a 410 Status for a resource version that is too old,
and a 403 Status for kinds the test forbids. ``down()`` closes the port and
every open stream; ``up()`` listens again on the same port.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from dashboard.cluster.resources import RESOURCES, Resource
from dashboard.cluster.simulated import SimulatedSource
from dashboard.cluster.source import Gone

PATHS = {
    (f"/apis/{r.group}/{r.version}/{r.plural}" if r.group else f"/api/{r.version}/{r.plural}"): r for r in RESOURCES
}
VERSION = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "cluster" / "version.json").read_text())
USER = "system:serviceaccount:windows-node-doctor:node-doctor-dashboard"


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}  # fmt: skip


class FakeApiServer:
    def __init__(self, source: SimulatedSource) -> None:
        self.source = source
        self.forbidden: set[str] = set()  # plurals whose list and watch answer 403
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.max_watch_seconds = 30.0
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._streams: set[socket.socket] = set()
        self._lock = threading.Lock()

    # -- life -------------------------------------------------------------------

    def up(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def down(self) -> None:
        """Stop listening and cut every open connection (the API server went away)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for sock in list(self._streams):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._streams.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, directory: Path, context: str = "fake") -> Path:
        path = directory / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "reader", "user": {"token": "not-a-real-token"}}],
                    "contexts": [{"name": context, "context": {"cluster": "fake", "user": "reader"}}],
                    "current-context": context,
                }
            )
        )
        return path

    def watches(self, plural: str) -> list[dict[str, str]]:
        return [q for path, q in self.requests if path.endswith("/" + plural) and q.get("watch") == "true"]

    def lists(self, plural: str) -> list[dict[str, str]]:
        return [q for path, q in self.requests if path.endswith("/" + plural) and q.get("watch") != "true"]

    # -- HTTP ---------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append((url.path, query))
                if url.path.rstrip("/") == "/version":
                    return self.send_json(200, {**VERSION, "gitVersion": fake.source.version})
                resource = PATHS.get(url.path)
                if resource is None:
                    return self.send_json(
                        404, status(404, "NotFound", "the server could not find the requested resource")
                    )
                verb = "watch" if query.get("watch") == "true" else "list"
                if resource.plural in fake.forbidden:
                    group = f'"{resource.group}"' if resource.group else '""'
                    message = (f'{resource.plural}{"." + resource.group if resource.group else ""} is forbidden: User '
                               f'"{USER}" cannot {verb} resource "{resource.plural}" in API group {group} at the '
                               "cluster scope")  # fmt: skip
                    return self.send_json(403, status(403, "Forbidden", message))
                if verb == "watch":
                    return self.watch(resource, query)
                return self.list(resource, query)

            def send_json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def list(self, resource: Resource, query: dict[str, str]) -> None:
                listing = fake.source.list(resource)
                start = int(query.get("continue") or 0)
                limit = int(query.get("limit") or 0) or len(listing.items) or 1
                page = listing.items[start : start + limit]
                meta: dict[str, Any] = {"resourceVersion": listing.resource_version}
                if start + limit < len(listing.items):
                    meta["continue"] = str(start + limit)
                kind = resource.kind + "List"
                self.send_json(200, {"kind": kind, "apiVersion": resource.api_version, "metadata": meta, "items": page})

            def watch(self, resource: Resource, query: dict[str, str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                with fake._lock:
                    fake._streams.add(self.connection)
                stop = threading.Event()
                seconds = min(float(query.get("timeoutSeconds") or 30), fake.max_watch_seconds)
                deadline = time.monotonic() + seconds
                try:
                    try:
                        for event in fake.source.watch(resource, query.get("resourceVersion", ""), stop):
                            if event.type == "OPEN":
                                self.wfile.flush()
                                continue
                            self.chunk({"type": event.type, "object": event.object})
                            if time.monotonic() > deadline:
                                break
                    except Gone as exc:
                        self.chunk({"type": "ERROR", "object": status(410, "Expired", str(exc))})
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client or down() closed the connection
                finally:
                    stop.set()
                    with fake._lock:
                        fake._streams.discard(self.connection)

            def chunk(self, event: dict[str, Any]) -> None:
                data = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler
