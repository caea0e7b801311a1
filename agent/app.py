"""The agent's loop: collect, queue, send; repeat every ``interval`` seconds."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from agent.collect import Collection, Collector
from agent.config import AgentConfig
from agent.runner import ProbeRunner
from agent.sender import FlushResult, ReportQueue, Sender
from agent.state import AgentState

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, config: AgentConfig, runner: ProbeRunner, *, sender: Sender | None = None) -> None:
        self.config = config
        self.runner = runner
        state_dir = Path(config.state_dir)
        self.state = AgentState.load(state_dir / "state.json")
        self.queue = ReportQueue(state_dir / "queue", config.queue_max_bytes)
        # A crash between queueing a report and saving the state must not reuse its sequence.
        self.state.sequence = max(self.state.sequence, self.queue.max_sequence())
        self.collector = Collector(config, runner, self.state)
        self.sender = sender or Sender(
            config.dashboard,
            config.resolved_token,  # read at every request: the token file may be rotated
            ca_bundle=config.ca_bundle,
            verify_tls=config.verify_tls,
            timeout=config.send_timeout,
            max_attempts=config.max_attempts,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
        )
        self._collect_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._connectivity: list[dict[str, Any]] = []

    def add_connectivity(self, result: dict[str, Any]) -> None:
        """Attach an on-demand test result to the next report."""
        with self._collect_lock:
            self._connectivity.append(result)

    def collect_and_queue(self) -> Collection:
        """Build one report and queue it (durably) before anything is sent."""
        with self._collect_lock:
            tests, self._connectivity = self._connectivity, []
            collection = self.collector.collect(connectivity=tests)
            self.state.dropped += self.queue.put(collection.report)
            self.collector.commit(collection)
            return collection

    def flush(self) -> FlushResult:
        with self._send_lock:
            return self.sender.flush(self.queue)

    def cycle(self) -> FlushResult:
        collection = self.collect_and_queue()
        result = self.flush()
        log.info(
            "report %s: sent %d, refused %d, queued %d%s",
            collection.report["sequence"],
            result.sent,
            result.rejected,
            result.pending,
            f" ({result.last_error})" if result.pending and result.last_error else "",
        )
        return result

    def run(self, stop: threading.Event) -> None:
        """Collect every ``interval`` seconds; send from a thread of its own.

        Collection never waits for delivery: while the dashboard is down, reports
        keep going into the on-disk queue and the sender drains it when it is back.
        """
        wake = threading.Event()
        sender = threading.Thread(target=self._send_loop, args=(stop, wake), name="sender", daemon=True)
        sender.start()
        while not stop.is_set():
            started = time.monotonic()
            try:
                collection = self.collect_and_queue()
                log.info("report %s queued", collection.report["sequence"])
                wake.set()
            except Exception:  # the loop must outlive any one bad cycle
                log.exception("collection cycle failed")
            stop.wait(max(0.0, self.config.interval - (time.monotonic() - started)))
        wake.set()
        sender.join(timeout=self.config.send_timeout + 1)

    def _send_loop(self, stop: threading.Event, wake: threading.Event) -> None:
        while not stop.is_set():
            wake.wait()
            wake.clear()
            try:
                result = self.flush()
            except Exception:
                log.exception("sending failed")
                continue
            if result.sent or result.rejected:
                log.info("sent %d, refused %d, queued %d", result.sent, result.rejected, result.pending)
            if result.pending:
                log.warning("%d report(s) queued: %s", result.pending, result.last_error or "dashboard unreachable")
                stop.wait(min(self.config.backoff_max, self.config.interval))
                wake.set()  # try again, even if no new report arrives
