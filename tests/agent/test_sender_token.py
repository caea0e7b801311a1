"""The agent sends the token file's current content with every report (kubelet rotates projected tokens)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.sender import Sender


def test_each_report_carries_the_token_file_as_it_is_now(tmp_path: Path) -> None:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(202)
            self.end_headers()
            self.wfile.write(b'{"status": "accepted"}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        token = tmp_path / "token"
        token.write_text("first-token\n")
        config = AgentConfig(dashboard=f"http://127.0.0.1:{server.server_address[1]}", token_file=str(token))
        sender = Sender(config.dashboard, config.resolved_token)
        assert sender.post(b"{}").status == 202
        token.write_text("rotated-token\n")  # kubelet wrote the new token
        assert sender.post(b"{}").status == 202
        token.unlink()  # mid-rotation: a failure to retry, not a crash
        assert sender.post(b"{}").status == 0
    finally:
        server.shutdown()
    assert seen == ["Bearer first-token", "Bearer rotated-token"]
