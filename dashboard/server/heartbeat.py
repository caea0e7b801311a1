"""File heartbeats for liveness probes of processes that serve no HTTP (the cluster watcher).

A loop calls ``beat(NAME)`` as it goes round; the probe runs
``python -m dashboard.server.heartbeat NAME --max-age SECONDS`` and fails when the file is older than
that (the loop is stuck) or missing. Files live in ``WND_HEARTBEAT_DIR`` (default: the temporary
folder), one per name; writing is rate-limited to one touch per ``MIN_INTERVAL`` seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

MIN_INTERVAL = 5.0
_last: dict[str, float] = {}


def folder() -> Path:
    return Path(os.environ.get("WND_HEARTBEAT_DIR") or Path(tempfile.gettempdir()) / "wnd-heartbeat")


def beat(name: str, now: float | None = None) -> None:
    """Record that ``name``'s loop is alive; cheap enough to call every time round."""
    now = time.monotonic() if now is None else now
    if now - _last.get(name, float("-inf")) < MIN_INTERVAL:
        return
    _last[name] = now
    path = folder() / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        pass  # a read-only or full disk must not stop the loop; the probe will say so


def age(name: str) -> float | None:
    """Seconds since ``name`` last beat, or None when it never did."""
    try:
        return max(0.0, time.time() - (folder() / name).stat().st_mtime)
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.server.heartbeat", description="liveness probe")
    parser.add_argument("name")
    parser.add_argument("--max-age", type=float, default=120.0, help="seconds")
    args = parser.parse_args(argv)
    seconds = age(args.name)
    if seconds is None:
        print(f"{args.name}: no heartbeat in {folder()}", file=sys.stderr)
        return 1
    if seconds > args.max_age:
        print(f"{args.name}: last heartbeat {seconds:.0f} s ago (limit {args.max_age:g} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
