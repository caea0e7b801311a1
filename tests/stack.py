"""A real stack for integration and browser tests: uvicorn serving the ASGI app and a
Celery worker, both on the test database and the test Redis, as separate processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from dashboard.embedded import Supervisor, free_port, python, wait_for_http


@dataclass(frozen=True)
class Stack:
    url: str


@contextmanager
def running_stack(*, worker: bool = True) -> Iterator[Stack]:
    """Start the web server (and a worker) on the current test database; stop them after."""
    db_name = connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db_name}",
        "REDIS_URL": settings.REDIS_URL,
        "WND_LOG_LEVEL": "WARNING",
    }
    port = free_port()
    supervisor = Supervisor()
    try:
        supervisor.start(
            "web",
            [python(), "-m", "uvicorn", "dashboard.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log", "--log-level", "warning"],
            env=env,
        )
        if worker:
            supervisor.start(
                "worker",
                [python(), "-m", "celery", "-A", "dashboard", "worker", "--loglevel", "WARNING", "--concurrency", "1",
                 "--without-heartbeat", "--without-gossip", "--without-mingle"],
                env=env,
            )
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        yield Stack(url=f"http://127.0.0.1:{port}")
    finally:
        supervisor.stop()
