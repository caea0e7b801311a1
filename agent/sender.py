"""Delivering reports: an on-disk queue and an HTTPS sender.

Contract:
- a report is written to the queue (gzip JSON, one file per report, named by
  its sequence) before any attempt to send it, and removed after a 2xx;
- the queue is bounded in bytes: when a new report does not fit, the oldest
  are dropped and counted; the count goes in the next report's ``dropped_reports``;
- reports are sent strictly in queue order: a report that cannot be delivered
  now blocks the ones after it (retried with exponential backoff and jitter,
  honouring ``Retry-After``); a 4xx other than 408/429 is the server refusing
  that report for good: it is logged with the server's message and dropped;
- every report carries a sequence that never goes backwards within its agent
  instance (``agent_instance``), so the dashboard can ignore a report it already
  stored when a response was lost in transit;
- a 5xx (503 with ``Retry-After`` when the dashboard's database or broker is
  away), 408, 429 or no answer at all is retried: the report is not lost;
- no NUL and no lone surrogate is ever sent (``diagnostics.storable``): each
  becomes U+FFFD, so every database can store the text.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diagnostics.storable import clean

log = logging.getLogger(__name__)

RETRYABLE_4XX = {408, 429}
_SUFFIX = ".json.gz"


class ReportQueue:
    """Reports waiting to be sent, oldest first, in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob("*.tmp"):
            stale.unlink(missing_ok=True)  # a write interrupted by a crash

    def items(self) -> list[Path]:
        return sorted(self.directory.glob("*" + _SUFFIX))

    def size(self) -> int:
        return sum(_size(p) for p in self.items())

    def max_sequence(self) -> int:
        return max((s for s in map(_sequence, self.items()) if s is not None), default=0)

    def put(self, report: dict[str, Any]) -> int:
        """Queue ``report`` (it must carry a ``sequence``); return how many reports went unannounced.

        That is the older reports dropped to stay within the bound, plus the
        drops those reports were themselves announcing (the count must not be
        lost with them). The announced count rides in the file name so that
        dropping a file does not need to read it.
        """
        body = encode_report(report)
        announced = int(report.get("dropped_reports", 0) or 0)
        name = f"{int(report['sequence']):012d}" + (f"-{announced}" if announced else "") + _SUFFIX
        path = self.directory / name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
        dropped = 0
        items = self.items()
        total = sum(_size(p) for p in items)
        for old in items:
            if total <= self.max_bytes or old == path:
                break
            total -= _size(old)
            old.unlink(missing_ok=True)
            dropped += 1 + _announced(old)
            log.warning("queue over %d bytes: dropped unsent report %s", self.max_bytes, old.name)
        return dropped


def _sequence(path: Path) -> int | None:
    head = path.name[:12]
    return int(head) if head.isdigit() else None


def _announced(path: Path) -> int:
    stem = path.name[: -len(_SUFFIX)]
    _, _, count = stem.partition("-")
    return int(count) if count.isdigit() else 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def encode_report(report: dict[str, Any]) -> bytes:
    # Level 6: a 200 KB log tail costs ~5 ms, paid once per report on the node.
    cleaned, _ = clean(report)
    return gzip.compress(json.dumps(cleaned, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), 6)


@dataclass(frozen=True)
class SendResult:
    status: int  # HTTP status; 0 when no response (connection refused, timeout, TLS failure)
    message: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status >= 500 or self.status in RETRYABLE_4XX


@dataclass
class FlushResult:
    sent: int = 0
    rejected: int = 0
    pending: int = 0
    last_error: str = ""


class Sender:
    def __init__(
        self,
        dashboard: str,
        token: str | Callable[[], str],
        *,
        ca_bundle: str = "",
        verify_tls: bool = True,
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.url = dashboard.rstrip("/") + "/api/v1/reports"
        # A callable is asked at every request: a projected ServiceAccount token file is
        # rewritten by kubelet before the token expires, and the agent must send the new one.
        self.token = token
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.rng = rng
        self.context: ssl.SSLContext | None = None
        if self.url.startswith("https://"):
            self.context = ssl.create_default_context(cafile=ca_bundle or None)
            if not verify_tls:
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE

    def post(self, body: bytes) -> SendResult:
        try:
            token = self.token() if callable(self.token) else self.token
        except ValueError as exc:  # the token file cannot be read now (being rotated): a retryable failure
            return SendResult(0, str(exc))
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "User-Agent": "windows-node-doctor-agent",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:
                return SendResult(response.status, _message(response.read(4096)))
        except urllib.error.HTTPError as exc:
            retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            try:
                detail = exc.read(4096)
            except OSError:
                detail = b""
            return SendResult(exc.code, _message(detail) or exc.reason, retry_after)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return SendResult(0, str(reason))

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with jitter (half fixed, half random), at least ``Retry-After``."""
        delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        delay = delay / 2 + self.rng() * delay / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def flush(self, queue: ReportQueue) -> FlushResult:
        """Send queued reports in order until the queue is empty or one cannot be delivered now."""
        result = FlushResult()
        for path in queue.items():
            try:
                body = path.read_bytes()
            except FileNotFoundError:
                continue  # dropped by the bound meanwhile
            attempt = 0
            while True:
                outcome = self.post(body)
                if outcome.ok:
                    path.unlink(missing_ok=True)
                    result.sent += 1
                    break
                if not outcome.retryable:
                    log.error("dashboard refused report %s (HTTP %d): %s", path.name, outcome.status, outcome.message)
                    path.unlink(missing_ok=True)
                    result.rejected += 1
                    result.last_error = f"HTTP {outcome.status}: {outcome.message}"
                    break
                attempt += 1
                result.last_error = f"HTTP {outcome.status}: {outcome.message}" if outcome.status else outcome.message
                if attempt >= self.max_attempts:
                    log.warning("report %s not delivered after %d attempts: %s", path.name, attempt, result.last_error)
                    result.pending = len(queue.items())
                    return result
                self.sleep(self.backoff(attempt - 1, outcome.retry_after))
        result.pending = len(queue.items())
        return result


def _message(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if isinstance(data.get(key), str):
                return data[key][:500]
    return text[:500]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
