"""Fault runs against a real stack: a dedicated redis-server, uvicorn, a Celery worker and beat
as separate processes that can be killed (SIGKILL) and started again, and agents that
deliver through the agent's own queue and sender.

Used by the fault tests and by ``bench/bench_faults.py``. Django must be set up, on a
database the child processes can open too (``database_url``).

What is counted, per report: each carries one log line naming it (``marker``), so
- stored: its marker is in a stored report;
- diagnosed: its report has ``diagnosed_at`` (none owed);
- log lines kept / duplicated: its marker is in the node's log tail once / more than once
  (a report applied twice would append its lines twice).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from agent.sender import ReportQueue, Sender
from agent.state import new_instance
from dashboard.server.embedded import (
    free_port,
    python,
    redis_server_binary,
    wait_for_http,
    wait_for_port,
    web_command,
    worker_command,
)
from tests.stack import beat_command

DIAGNOSED_RE = re.compile(r'data-diagnosed="(\d+)"')
KUBELET_LINE = 'I1124 10:15:32.123456    4242 kubelet.go:2337] "SyncLoop (housekeeping)" marker="{marker}"\r\n'


def hns_endpoints(count: int) -> dict[str, Any]:
    """An ``hns.endpoints`` probe of ``count`` endpoints (invented, in the shape of Get-HnsEndpoint):
    a report that takes the checks a while, so that a worker can be killed in the middle."""
    endpoints = [
        {
            "ID": f"{i:08X}-5C1A-4C5E-9D1C-0A0B0C0D0E{i % 100:02d}",
            "Name": f"Ethernet_{i}",
            "IPAddress": f"10.244.{i // 250}.{i % 250 + 2}",
            "MacAddress": f"00-15-5D-7A-{i % 256:02X}-{(i * 7) % 256:02X}",
            "State": 2,
            "VirtualNetworkName": "cbr0",
            "IsRemoteEndpoint": i % 3 == 0,
            "PrefixLength": 24,
        }
        for i in range(count)
    ]
    return {"hns.endpoints": {"command": "Get-HnsEndpoint | ConvertTo-Json -Depth 8", "output": json.dumps(endpoints)}}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds it took ``condition`` to hold; AssertionError after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class FaultStack:
    """The processes of one fault run; each can be killed -9 and started again."""

    database_url: str
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="wnd-faults-")))
    appendonly: bool = False  # Redis keeps its data (and the queue) across a restart
    worker_concurrency: int = 2
    sweep_every: int | None = 2  # seconds between maintenance tasks (the sweeper); None: as configured (30)
    env_extra: dict[str, str] = field(default_factory=dict)
    redis_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)  # processes that exited on their own, restarted

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._restart_exited, name="fault-stack-restarts", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def broker_idle(self) -> bool:
        """No task waits in the queue or runs: with late acknowledgement a task stays in kombu's
        ``unacked`` hash until it has finished, prefetched ones included."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            return client.llen("celery") == 0 and client.hlen("unacked") == 0
        finally:
            client.close()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "WND_VAR_DIR": str(self.workdir / "var"),
            "WND_LOG_LEVEL": "ERROR",
            "WND_REQUEUE_AFTER": "5",
            "WND_LEASE_SECONDS": "5",
            "WND_REPORTS_KEPT_PER_NODE": "100000",  # every report stays countable
            **self.env_extra,
        }

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        proc = subprocess.Popen(argv, env=self.env(), stdout=log, stderr=log, start_new_session=True)
        with self._lock:
            self.procs[name] = proc
        self._argv = getattr(self, "_argv", {})
        self._argv[name] = argv

    def _restart_exited(self) -> None:
        """What the orchestrator does (compose ``restart: unless-stopped``, a Kubernetes pod's
        restart policy): a process that exited on its own is started again, a second later.
        The Celery worker needs it: it exits when its broker connection is cut in the middle
        of a delivery (kombu 5.7, an ``AttributeError`` while it closes the lost connection)."""
        while not self._stopping.wait(1.0):
            with self._lock:
                exited = [name for name, proc in self.procs.items() if name != "redis" and proc.poll() is not None]
                for name in exited:
                    del self.procs[name]
            for name in exited:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self._start(name, self._argv[name])

    def kill(self, name: str) -> None:
        """SIGKILL the process and its children (a worker's pool): no clean-up of any kind.
        It stays down until started again."""
        with self._lock:
            proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def start_redis(self) -> None:
        (self.workdir / "redis").mkdir(parents=True, exist_ok=True)
        argv = [redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--dir", str(self.workdir / "redis")]  # fmt: skip
        self._start("redis", argv)
        wait_for_port(self.redis_port)

    def start_worker(self) -> None:
        self._start("worker", worker_command(concurrency=self.worker_concurrency, loglevel="ERROR"))

    def start_web(self) -> None:
        self._start("web", web_command(self.web_port))
        wait_for_http(f"{self.url}/healthz")

    def manage(self, *argv: str) -> str:
        """Run ``manage.py`` on the stack's database; return what it printed."""
        root = Path(__file__).resolve().parents[2]
        done = subprocess.run(
            [python(), str(root / "manage.py"), *argv], env=self.env(), check=True, capture_output=True, text=True
        )
        return done.stdout

    def start(self) -> None:
        """Redis, then the maintenance interval shortened, then web, worker and beat."""
        from django_celery_beat.models import PeriodicTask

        from dashboard.schedules import MAINTENANCE_NAME

        self.start_redis()
        if self.sweep_every is not None:  # this process's database must be the stack's
            task = PeriodicTask.objects.select_related("interval").get(name=MAINTENANCE_NAME)
            assert task.interval is not None
            task.interval.every = self.sweep_every
            task.interval.save()
        self.start_web()
        self.start_worker()
        self._start("beat", beat_command(loglevel="ERROR"))
        self._watch.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watch.is_alive():
            self._watch.join()
        for name in ["beat", "worker", "web", "redis"]:
            proc = self.procs.pop(name, None)
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@dataclass
class FaultAgent:
    """An agent's delivery: its on-disk queue and sender, reports numbered within an instance."""

    url: str
    token: str
    cluster: str
    node: str
    folder: Path
    instance: str = field(default_factory=new_instance)
    sequence: int = 0
    markers: list[str] = field(default_factory=list)
    rejected: int = 0

    def __post_init__(self) -> None:
        self.queue = ReportQueue(self.folder / "queue", 64 * 1024 * 1024)
        self.sender = Sender(self.url, self.token, timeout=10, max_attempts=1, backoff_base=0.05, backoff_max=0.5)

    def wipe_state(self) -> None:
        """The node reimaged: a new instance, its sequence from 1, the queue gone."""
        for item in self.queue.items():
            item.unlink()
        self.instance, self.sequence = new_instance(), 0

    def queue_report(self, probes: dict[str, Any] | None = None) -> str:
        self.sequence += 1
        marker = f"{self.instance[:8]}-{self.sequence}"
        self.markers.append(marker)
        self.queue.put(
            {
                "format": "node-report/v1",
                "cluster": self.cluster,
                "node": self.node,
                "agent_version": "faults",
                "agent_instance": self.instance,
                "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "sequence": self.sequence,
                "probes": probes or {},
                "files": {},
                "logs": {
                    "kubelet": {
                        "path": "C:\\k\\kubelet.log",
                        "offset": self.sequence * 1000,
                        "text": KUBELET_LINE.format(marker=marker),
                    }
                },
            }
        )
        return marker

    def flush(self) -> int:
        """Try to send the queue once (in order); return how many are still queued."""
        result = self.sender.flush(self.queue)
        self.rejected += result.rejected
        return result.pending

    def deliver(self, timeout: float) -> None:
        """Send until the queue is empty, retrying (the dashboard may be partly down)."""
        wait_until(lambda: self.flush() == 0, timeout, "the agent's queue to drain")


@dataclass
class Counts:
    sent: int
    stored: int
    diagnosed: int
    undiagnosed: int
    lost: int
    log_lines_missing: int
    log_lines_duplicated: int
    duplicates_answered: int
    rejected: int

    def line(self) -> str:
        return (
            f"sent {self.sent}  stored {self.stored}  diagnosed {self.diagnosed}  undiagnosed {self.undiagnosed}  "
            f"lost {self.lost}  log lines missing {self.log_lines_missing}  duplicated {self.log_lines_duplicated}  "
            f"duplicates answered {self.duplicates_answered}  refused {self.rejected}"
        )


def stored_markers(node: Any) -> dict[str, Any]:
    """marker -> its stored report."""
    from dashboard.models import Report

    found: dict[str, Any] = {}
    for report in Report.objects.filter(node=node).order_by("pk"):
        text = gzip.decompress(bytes(report.payload)).decode("utf-8", "replace")
        for part in text.split('marker=\\"')[1:]:
            found[part.split("\\", 1)[0]] = report
    return found


def count(node: Any, agents: list[FaultAgent]) -> Counts:
    from dashboard.models import LogTail, Node

    markers = [m for a in agents for m in a.markers]
    stored = stored_markers(node)
    tail = LogTail.objects.filter(node=node, kind="kubelet").values_list("text", flat=True).first() or ""
    in_tail = {m: tail.count(f'marker="{m}"') for m in markers}
    diagnosed = sum(1 for m in markers if m in stored and stored[m].diagnosed_at is not None)
    return Counts(
        sent=len(markers),
        stored=sum(1 for m in markers if m in stored),
        diagnosed=diagnosed,
        undiagnosed=sum(1 for m in markers if m in stored and stored[m].diagnosed_at is None),
        lost=sum(1 for m in markers if m not in stored),
        log_lines_missing=sum(1 for m in markers if in_tail[m] == 0),
        log_lines_duplicated=sum(1 for m in markers if in_tail[m] > 1),
        duplicates_answered=Node.objects.get(pk=node.pk).duplicate_reports,
        rejected=sum(a.rejected for a in agents),
    )


def settled(node: Any) -> bool:
    """No report of the node is owed a diagnosis."""
    from dashboard.models import Report

    return not Report.objects.filter(node=node, diagnosed_at__isnull=True).exists()


class LiveWatcher:
    """A browser on a node page: reconnects after its socket closes with the delays of
    ``static/js/app.js`` (1.5-3 s at most) and notes when each diagnosed report first shows up."""

    def __init__(self, url: str, path: str, cookie: str) -> None:
        self.url, self.path, self.cookie = url, path, cookie
        self.seen: list[tuple[float, int]] = []  # (monotonic time, last diagnosed report id shown)
        self.reconnects = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        from websockets.sync.client import connect

        ws_url = self.url.replace("http", "ws") + self.path
        retries = 0
        while not self.stop.is_set():
            try:
                with connect(ws_url, additional_headers={"Cookie": self.cookie, "Origin": self.url}) as ws:
                    retries = 0
                    while not self.stop.is_set():
                        try:
                            frame = ws.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        for match in DIAGNOSED_RE.findall(str(frame)):
                            self.seen.append((time.monotonic(), int(match)))
            except Exception:
                pass
            if not self.stop.is_set():
                self.reconnects += 1
                time.sleep(min(3.0, 0.25 * 2**retries) * (0.5 + random.random() / 2))
                retries += 1

    def first_showing(self, report_id: int, after: float) -> float | None:
        times = [t for t, shown in self.seen if shown >= report_id and t >= after]
        return min(times) if times else None
