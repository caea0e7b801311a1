"""Hostile uploads to the Diagnose page: the web process's memory and ``/healthz`` latency meanwhile.

Starts redis-server and uvicorn (the served command of ``dashboard.server.embedded.web_command``) on
a fresh SQLite database, signs a user in, then, while a thread asks ``/healthz`` every 20 ms
and another samples the web process's RSS every 50 ms, uploads:

1. a 36 MB tar.gz whose HNS endpoint dump inflates to 128 MiB (``tests.hostile.inputs``);
2. a 1.7 MB tar.gz of 14 Kubernetes YAML lists of 8 MiB each.

It prints, per upload, the answer (status, time, message) and, for the whole run, the web
process's RSS before / peak / growth and ``/healthz`` p50 / p99 / max.

    python bench/bench_hostile.py [--root PATH] [--timeout SECONDS]

``--root`` serves another checkout of the project (e.g. an older one, to compare); the
database and the session are made with this one.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.server.embedded import Supervisor, free_port, wait_for_http, web_command  # noqa: E402
from tests.hostile.inputs import inflating_bundle, yaml_bundle  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Probe(threading.Thread):
    """Asks /healthz every 20 ms and samples the web process's RSS every 50 ms until stopped."""

    def __init__(self, port: int, pid: int) -> None:
        super().__init__(daemon=True)
        self.port, self.pid = port, pid
        self.latencies: list[float] = []
        self.started: list[float] = []
        self.failures = 0
        self.rss: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        last_rss = 0.0
        while not self.stopped.is_set():
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            took = time.perf_counter() - started
            self.latencies.append(took)
            self.started.append(started)
            self.failures += not ok
            if time.perf_counter() - last_rss >= 0.05:
                self.rss.append(rss_mb(self.pid))
                last_rss = time.perf_counter()
            time.sleep(max(0.0, 0.02 - took))


def upload(port: int, cookie: str, name: str, data: bytes, timeout: float) -> tuple[int, float, str]:
    """POST the file to /diagnose as the page's form does; (status, seconds, the page's message)."""
    csrf = secrets.token_hex(16)
    boundary = "----wnd" + secrets.token_hex(8)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="mode"\r\n\r\nupload\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="bundle"; filename="{name}"\r\n'
        "Content-Type: application/gzip\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Cookie": f"{cookie}; csrftoken={csrf}",
        "X-CSRFToken": csrf,
        "HX-Request": "true",
    }
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/diagnose", body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
    except TimeoutError:
        return 0, time.perf_counter() - started, f"no answer within {timeout:.0f} s (given up)"
    finally:
        conn.close()
    took = time.perf_counter() - started
    match = re.search(r'class="[^"]*error[^"]*"[^>]*>\s*(.*?)\s*<', text, re.S)
    message = match.group(1) if match else ("findings shown" if response.status == 200 else text[:200])
    return response.status, took, " ".join(message.split())[:160]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose dashboard is served")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for each upload's answer")
    args = parser.parse_args()
    supervisor = Supervisor()
    workdir = Path(tempfile.mkdtemp(prefix="wnd-bench-hostile-"))
    env = {**os.environ, "WND_VAR_DIR": str(workdir), "WND_LOG_LEVEL": "ERROR", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    web: subprocess.Popen[bytes] | None = None
    try:
        env["REDIS_URL"] = supervisor.start_redis(free_port(), workdir / "redis")
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
        import django

        django.setup()
        from django.contrib.auth.models import User
        from django.core.management import call_command

        from tests.integration.live import session_cookie

        call_command("migrate", verbosity=0)
        cookie = session_cookie(User.objects.create_user("bench-viewer"))
        print("building the hostile inputs ...", flush=True)
        inputs = [
            ("inflating.tar.gz", inflating_bundle(workdir / "inflating.tar.gz").read_bytes()),
            ("yaml.tar.gz", yaml_bundle(workdir / "yaml.tar.gz").read_bytes()),
        ]
        port = free_port()
        web = subprocess.Popen(web_command(port), cwd=args.root, env=env, start_new_session=True)
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        probe = Probe(port, web.pid)
        probe.start()
        time.sleep(3)
        baseline_rss = statistics.median(probe.rss) if probe.rss else rss_mb(web.pid)
        quiet = list(probe.latencies)
        print(f"served from {args.root}")
        phases = []
        for name, data in inputs:
            phases.append((time.perf_counter(), name))
            status, took, message = upload(port, cookie, name, data, args.timeout)
            print(f"upload {name} ({len(data) / 1e6:.1f} MB): HTTP {status} in {took:.1f} s: {message}")
        time.sleep(1)
        probe.stopped.set()
        probe.join()
        busy = probe.latencies[len(quiet) :]
        peak = max(probe.rss)
        print(f"web RSS: {baseline_rss:.0f} MiB before, {peak:.0f} MiB peak, growth {peak - baseline_rss:+.0f} MiB")
        idle_p50, idle_p99 = percentile(quiet, 0.5) * 1000, percentile(quiet, 0.99) * 1000
        print(f"/healthz while idle: p50 {idle_p50:.0f} ms, p99 {idle_p99:.0f} ms")
        print(
            f"/healthz during the uploads ({len(busy)} requests, {probe.failures} failed): "
            f"p50 {percentile(busy, 0.5) * 1000:.0f} ms, p99 {percentile(busy, 0.99) * 1000:.0f} ms, "
            f"max {max(busy, default=0) * 1000:.0f} ms"
        )
        slowest = sorted(zip(probe.latencies, probe.started, strict=True), reverse=True)[:3]
        for latency, at in slowest:
            since, what = max((p for p in phases if p[0] <= at), default=(at, "before the uploads"))
            print(f"  slow /healthz: {latency * 1000:.0f} ms, {at - since:.1f} s into {what}")
        return 0
    finally:
        if web is not None:
            web.terminate()
            try:
                web.wait(10)
            except subprocess.TimeoutExpired:
                web.kill()
        supervisor.stop()


if __name__ == "__main__":
    raise SystemExit(main())
