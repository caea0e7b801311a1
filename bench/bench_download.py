"""Memory of the web process while it serves a large bundle download.

Starts uvicorn (the production ASGI server) on loopback with a folder bundle storage, stores a
bundle of --megabytes (default 200) random bytes, warms the server up with a small download,
then downloads the large one through a slow reader and prints the web process's peak resident
memory (VmHWM) before and after, and the growth. A download that buffered the file would grow
by about its size; a streamed one stays flat (the goal: under 32 MB of growth).

    python bench/bench_download.py [--megabytes 200] [--read-kib 64]

Linux only (/proc). Every request goes to 127.0.0.1, and the run stops by itself.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.server.embedded import Supervisor, free_port, wait_for_http, web_command  # noqa: E402


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def download(url: str, cookie: str, read_bytes: int) -> tuple[int, str, float]:
    """Read the whole body ``read_bytes`` at a time; returns its size, SHA-256 and seconds taken."""
    request = urllib.request.Request(url, headers={"Cookie": cookie})
    digest = hashlib.sha256()
    size = 0
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=300) as response:
        while chunk := response.read(read_bytes):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest(), time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--read-kib", type=int, default=64, help="how much the client reads at a time")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="wnd-bench-download-"))
    env = {
        **os.environ,
        "WND_VAR_DIR": str(workdir),
        "WND_LOG_LEVEL": "ERROR",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "WND_BUNDLE_STORAGE": "file",
        "WND_BUNDLE_DIR": str(workdir / "bundles"),
    }
    supervisor = Supervisor()
    try:
        if "REDIS_URL" not in env:
            env["REDIS_URL"] = supervisor.start_redis(free_port(), workdir / "redis")
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
        import django

        django.setup()
        from django.contrib.auth.models import Group, User
        from django.core.management import call_command
        from django.utils import timezone

        from dashboard import bundlestore
        from dashboard.models import Bundle
        from tests.integration.live import session_cookie

        call_command("migrate", verbosity=0)
        user = User.objects.create_user("bench-download")
        user.groups.add(Group.objects.get_or_create(name="operator")[0])
        cookie = session_cookie(user)

        def stored(name: str, size: int) -> tuple[Bundle, str]:
            local = workdir / f"local-{name}"
            digest = hashlib.sha256()
            with local.open("wb") as fh:
                left = size
                while left:
                    block = os.urandom(min(left, 1 << 20))
                    digest.update(block)
                    fh.write(block)
                    left -= len(block)
            saved = bundlestore.save(name, local)
            bundle = Bundle.objects.create(
                state=Bundle.DONE, file_name=saved, size_bytes=size, finished_at=timezone.now()
            )
            return bundle, digest.hexdigest()

        small, _ = stored("1-warm-up.tar.gz", 4 << 20)
        large, large_digest = stored("2-large.tar.gz", args.megabytes << 20)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        supervisor.start("web", web_command(port), env=env)
        wait_for_http(f"{url}/healthz")
        pid = supervisor.children[-1][1].pid

        download(f"{url}/bundles/{small.pk}/download", cookie, args.read_kib << 10)
        before_peak, before_rss = peak_rss_kib(pid), rss_kib(pid)
        size, digest, seconds = download(f"{url}/bundles/{large.pk}/download", cookie, args.read_kib << 10)
        after_peak, after_rss = peak_rss_kib(pid), rss_kib(pid)
        if (size, digest) != (args.megabytes << 20, large_digest):
            print(f"FAILED: got {size} bytes, SHA-256 {digest}")
            return 1
        growth_mib = (after_peak - before_peak) / 1024
        print(
            f"download: {args.megabytes} MiB in {seconds:.1f} s ({args.megabytes / seconds:.0f} MiB/s), body verified"
        )
        print(f"web process peak RSS: {before_peak / 1024:.1f} MiB before, {after_peak / 1024:.1f} MiB after")
        print(f"web process RSS: {before_rss / 1024:.1f} MiB before, {after_rss / 1024:.1f} MiB after")
        print(f"peak growth during the download: {growth_mib:.1f} MiB (goal: under 32 MiB)")
        return 0 if growth_mib < 32 else 1
    finally:
        supervisor.stop()


if __name__ == "__main__":
    sys.exit(main())
