"""A real stack for integration and browser tests: uvicorn serving the ASGI app, a
Celery worker and (optionally) Celery beat, on the test database and the test Redis,
as separate processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from dashboard.live import redis_client
from dashboard.server.embedded import Supervisor, free_port, python, wait_for_http, web_command, worker_command


@dataclass
class Stack:
    url: str
    port: int
    env: dict[str, str]
    supervisor: Supervisor = field(default_factory=Supervisor)
    web: Supervisor = field(default_factory=Supervisor)

    def stop_web(self) -> None:
        """Take the dashboard's web server down (the worker keeps running)."""
        self.web.stop()

    def start_web(self) -> None:
        self.web.start("web", web_command(self.port), env=self.env)
        wait_for_http(f"{self.url}/healthz")


def beat_command(loglevel: str = "WARNING") -> list[str]:
    """Celery beat (the database scheduler of the settings), checking for due entries every second."""
    return [python(), "-m", "celery", "-A", "dashboard", "beat", "--loglevel", loglevel, "--max-interval", "1"]


@contextmanager
def running_stack(*, worker: bool = True, beat: bool = False, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """Start the web server (and a worker, and beat) on the current test database; stop them after.

    ``env`` adds settings for every process (e.g. ``WND_SCHEDULE_COLLECT_WAIT``).
    """
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "WND_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    # Each test starts from an empty database (transactional tests flush it), so
    # Redis starts empty too: no task queued, no agent presence or sequence left over.
    redis_client().flushdb()
    port = free_port()
    stack = Stack(url=f"http://127.0.0.1:{port}", port=port, env=env)
    try:
        if worker:
            stack.supervisor.start("worker", worker_command(concurrency=1), env=env)
        if beat:
            stack.supervisor.start("beat", beat_command(), env=env)
        stack.start_web()
        yield stack
    finally:
        stack.web.stop()
        stack.supervisor.stop()
