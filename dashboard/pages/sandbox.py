"""Untrusted input diagnosed in a child process with memory and time limits.

The Diagnose page reads whatever a signed-in user uploads or pastes. Parsing is the
part an input controls (a JSON file that inflates to gigabytes of objects, a YAML file
that takes minutes), so it never runs in the web process, which also serves ingest,
``/healthz`` and every WebSocket:

- ``diagnose_isolated`` runs ``diagnostics.cli.diagnose`` in a fresh Python process that
  first limits itself: address space (``RLIMIT_AS``, ``WND_DIAGNOSE_MEMORY_MB``), CPU
  seconds (``RLIMIT_CPU``) and, from the parent, wall-clock time (``WND_DIAGNOSE_TIMEOUT``,
  then it is killed); it runs at a lower priority (nice 10) than the web process. The child
  imports only ``diagnostics``; it prints one JSON object;
- the parent waits on it with asyncio, so no thread of the web process is held meanwhile;
- ``slot`` counts running analyses per user in Redis (``WND_DIAGNOSE_PER_USER``), so one
  person cannot start many at once; a slot expires by itself if its process dies.

Every failure is a ``SandboxError`` whose message is fit for the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from django.conf import settings

from diagnostics.cli import Diagnosis
from diagnostics.model import Finding, FindingsDocument

log = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parents[2]

# The child: limits first, then the engine. It answers on stdout with one JSON object,
# {"error": "..."} for an input the reader refuses.
_CHILD = """
import json, os, resource, sys
os.nice(10)  # the web process, on the same cores, comes first
memory, cpu = int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
from diagnostics.bundle import BundleError
from diagnostics.cli import diagnose
try:
    d = diagnose(sys.argv[1])
except BundleError as exc:
    out = {"error": str(exc)}
else:
    out = {"document": d.document.to_dict(), "nodes": d.nodes, "checks": d.checks}
sys.stdout.write(json.dumps(out))
"""


class SandboxError(RuntimeError):
    """The analysis could not finish; the message says why, for the page."""


class InputError(SandboxError):
    """The reader refused the input (not a bundle, corrupt...): its own message, as the CLI says it."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    timeout: int  # seconds, wall clock; CPU time is limited to the same

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(settings.WND_DIAGNOSE_MEMORY_MB * 1024 * 1024, settings.WND_DIAGNOSE_TIMEOUT)


async def diagnose_isolated(path: Path, limits: Limits | None = None) -> Diagnosis:
    """``diagnostics.cli.diagnose(path)``, run in a limited child process."""
    limits = limits or Limits.from_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE", "REDIS", "WND_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        str(path),
        str(limits.memory_bytes),
        str(limits.timeout),
        cwd=BASE_DIR,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=limits.timeout + 2)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SandboxError(_too_slow(limits)) from None
    except asyncio.CancelledError:  # the client went away: the child must not outlive the request
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise SandboxError(_failure(proc.returncode, err.decode("utf-8", "replace"), limits))
    try:
        answer: dict[str, Any] = json.loads(out)
    except ValueError:
        raise SandboxError("The analysis stopped without an answer; try again, or run python -m diagnostics.") from None
    if "error" in answer:
        raise InputError(str(answer["error"]))
    doc = answer["document"]
    document = FindingsDocument(
        findings=[Finding.from_dict(f) for f in doc["findings"]], inputs=doc["inputs"], skipped=doc["skipped"]
    )
    return Diagnosis(document, list(answer["nodes"]), int(answer["checks"]))


def _too_slow(limits: Limits) -> str:
    return (
        f"The analysis took longer than {limits.timeout} s (WND_DIAGNOSE_TIMEOUT) and was stopped. "
        "Upload a smaller bundle (one node, recent logs), or run python -m diagnostics on it."
    )


def _failure(code: int | None, stderr: str, limits: Limits) -> str:
    if code in (-signal.SIGXCPU, -signal.SIGKILL) and "MemoryError" not in stderr:
        return _too_slow(limits)
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return (
            f"The analysis needed more than {limits.memory_bytes // (1024 * 1024)} MiB of memory "
            "(WND_DIAGNOSE_MEMORY_MB) and was stopped. Upload a smaller bundle, or run python -m diagnostics on it."
        )
    return "The analysis failed on this input; run python -m diagnostics on it to see why."


# -- per-user slots ---------------------------------------------------------------------


class Busy(SandboxError):
    """As many analyses as allowed already run (for this user, or for everyone)."""


ALL = "all"


def _slot_key(who: int | str) -> str:
    return f"wnd:diagnose-running:{who}"


@contextlib.asynccontextmanager
async def slot(user_id: int) -> AsyncIterator[None]:
    """Hold an analysis slot (Redis) for the block; ``Busy`` if none is free.

    One of the user's ``WND_DIAGNOSE_PER_USER`` and one of everyone's ``WND_DIAGNOSE_CONCURRENCY``
    (each analysis may use ``WND_DIAGNOSE_MEMORY_MB``: the two bound what the page can cost).
    The counters expire a little after the longest analysis can run, so a web process killed
    mid-analysis does not keep anyone out for long.
    """
    from dashboard import live

    client = live.redis_client()
    mine, everyone = _slot_key(user_id), _slot_key(ALL)
    ttl = settings.WND_DIAGNOSE_TIMEOUT + 60
    try:
        running, total = await asyncio.to_thread(_take, client, (mine, everyone), ttl)
    except redis.RedisError:
        # Without Redis the count is unknown: the analysis still runs (each one is limited anyway).
        log.warning("Redis unavailable: the Diagnose page's concurrency limits are not applied", exc_info=True)
        yield
        return
    try:
        if running > settings.WND_DIAGNOSE_PER_USER:
            raise Busy(
                "You already have an analysis running: wait for it to finish, then try again "
                f"(at most {settings.WND_DIAGNOSE_PER_USER} at a time, WND_DIAGNOSE_PER_USER)."
            )
        if total > settings.WND_DIAGNOSE_CONCURRENCY:
            raise Busy(
                f"{settings.WND_DIAGNOSE_CONCURRENCY} analyses are already running (WND_DIAGNOSE_CONCURRENCY): "
                "try again in a minute."
            )
        yield
    finally:
        with contextlib.suppress(redis.RedisError):  # the keys expire by themselves anyway
            await asyncio.to_thread(_give_back, client, (mine, everyone))


def _take(client: Any, keys: tuple[str, ...], ttl: int) -> tuple[int, ...]:
    with client.pipeline() as pipe:
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, ttl)
        answers = pipe.execute()
    return tuple(int(n) for n in answers[::2])


def _give_back(client: Any, keys: tuple[str, ...]) -> None:
    with client.pipeline() as pipe:
        for key in keys:
            pipe.decr(key)
        pipe.execute()
