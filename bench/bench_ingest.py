"""Load benchmark of the running product on loopback: ingest -> diagnose -> live frames.

Starts a real stack (redis-server or REDIS_URL, uvicorn, a separate Celery worker),
opens M WebSocket clients on a node page (or the fleet page), then posts realistic
reports (tens of KB, with log tails) at rising rates. For each rate it prints the
achieved rate, refusals, the diagnosis backlog, report-accepted -> WebSocket frame
latency p50/p99, the watched reports no frame ever showed (``missing``: must be 0 at
every rate, overload included), and the CPU time per report of the web process and
of the worker; at the end, the highest rate at which nothing failed.

Traffic (``--traffic``): ``realistic`` is what a fleet sends once it is running: most
reports say what the previous one said, 5 % bring new log lines, 1 % a changed fact;
``changed`` is the worst case, every report with new log lines and a changed fact.
The watched node's reports always bring new log lines, so each one should reach the
browsers.

    python bench/bench_ingest.py [--clients 50] [--page node|fleet] [--rates 25,50,100,150]
                                 [--traffic realistic|changed] [--postgres | --database-url URL]

Every request goes to 127.0.0.1, each step is bounded in time, and the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.server.embedded import (  # noqa: E402
    Supervisor,
    free_port,
    wait_for_http,
    wait_for_port,
    web_command,
    worker_command,
)

ROW_RE = re.compile(r'id="node-row-(\d+)" data-report="(\d+)"')
DIAGNOSED_RE = re.compile(r'data-diagnosed="(\d+)"')
WATCHED = "bench-watched"
SUBNET_ENV = "FLANNEL_NETWORK=10.244.0.0/16\r\nFLANNEL_SUBNET=10.244.3.1/24\r\nFLANNEL_MTU=1450\r\n"


def kubelet_lines(node: str, start: int, count: int) -> str:
    lines = []
    for i in range(start, start + count):
        lines.append(
            f"I1124 10:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000000:06d}    4242 kubelet_pods.go:{1000 + i % 97}] "
            f'"SyncLoop (PLEG): event for pod" pod="default/web-{i % 40}" '
            f'event={{ID:{i:x} Type:ContainerStarted}} node="{node}"\r\n'
        )
    return "".join(lines)


def hns_endpoints(count: int) -> str:
    endpoints = [
        {
            "ID": f"{i:08X}-5C1A-4C5E-9D1C-0A0B0C0D0E{i % 100:02d}",
            "Name": f"Ethernet_{i}",
            "IPAddress": f"10.244.3.{i % 250 + 2}",
            "MacAddress": f"00-15-5D-7A-{i % 256:02X}-{(i * 7) % 256:02X}",
            "State": 2,
            "VirtualNetworkName": "cbr0",
            "IsRemoteEndpoint": i % 3 == 0,
            "PrefixLength": 24,
            "Policies": [{"Type": "OutBoundNAT", "ExceptionList": ["10.244.0.0/16", "10.96.0.0/12"]}],
        }
        for i in range(count)
    ]
    return json.dumps(endpoints, indent=4).replace("\n", "\r\n")


def make_report(cluster: str, node: str, sequence: int, *, new_lines: bool = True, fact: int = 0) -> bytes:
    """A report; ``new_lines`` False sends no log text (nothing new since the last one); ``fact`` varies the MTU."""
    report = {
        "format": "node-report/v1",
        "cluster": cluster,
        "node": node,
        "agent_version": "bench",
        "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sequence": sequence,
        "probes": {
            "hns.endpoints": {"command": "Get-HnsEndpoint | ConvertTo-Json -Depth 8", "output": hns_endpoints(30)}
        },
        "files": {
            "subnet.env": {
                "path": "C:\\run\\flannel\\subnet.env",
                "exists": True,
                "content": SUBNET_ENV.replace("1450", str(1450 - fact % 50)),
            }
        },
        "logs": {
            "kubelet": {
                "path": "C:\\k\\kubelet.log",
                "offset": sequence * 20000,
                "text": kubelet_lines(node, sequence * 100, 100) if new_lines else "",
            }
        },
    }
    return gzip.compress(json.dumps(report).encode(), compresslevel=1)


def traffic(kind: str, i: int) -> tuple[bool, bool]:
    """(new log lines, changed fact) of the ``i``-th report of a node-independent stream."""
    if kind == "changed":
        return True, True
    bucket = (i * 7919) % 100  # a fixed, well-spread pattern: 1 % changed fact, 5 % new log lines
    return bucket < 6, bucket == 0


class Cpu:
    """CPU seconds (user + system) used so far by a process and its children (Celery's pool)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)

    def seconds(self) -> float:
        import psutil

        total = 0.0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total


@dataclass
class Step:
    rate: int
    sent: int = 0
    accepted: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    missing: int = 0
    backlog: int = 0
    web_cpu: float = 0.0  # seconds, over the step and its drain
    worker_cpu: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            not self.refused
            and not self.errors
            and not self.missing
            and self.sent / self.elapsed >= 0.95 * self.rate
            and self.backlog < self.rate
            and self.p99 <= 0.5
        )

    @property
    def p99(self) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("inf")

    def line(self) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000 if lat else float("nan")
        return (
            f"{self.rate:>5}/s  sent {self.sent / self.elapsed:7.1f}/s  accepted {self.accepted:6d}  "
            f"refused {sum(self.refused.values()):4d}{self.refused or ''}  errors {self.errors:3d}  "
            f"backlog {self.backlog:5d}  "
            f"frames p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  missing {self.missing:3d}  "
            f"cpu/report web {1000 * self.web_cpu / max(1, self.accepted):5.2f} ms "
            f"worker {1000 * self.worker_cpu / max(1, self.accepted):5.2f} ms  {'ok' if self.ok else 'FAIL'}"
        )


class Watcher:
    """WebSocket clients that record when each watched report first shows up in a frame."""

    def __init__(self) -> None:
        self.first_seen: dict[int, float] = {}
        self.frames = 0
        self.reconnects = 0

    def saw(self, frame: str, node_pk: int, page: str) -> None:
        now = time.monotonic()
        self.frames += 1
        if page == "fleet":
            ids = [int(r) for n, r in ROW_RE.findall(frame) if int(n) == node_pk]
        else:
            ids = [int(r) for r in DIAGNOSED_RE.findall(frame)]
        if ids:
            newest = max(ids)
            self.first_seen.setdefault(newest, now)

    def latency(self, report_id: int, accepted_at: float) -> float | None:
        # A frame showing a newer report of the node also shows this one's effect.
        times = [t for rid, t in self.first_seen.items() if rid >= report_id]
        return min(times) - accepted_at if times else None


@dataclass
class Setup:
    env: dict[str, str]
    url: str
    tokens: dict[str, str]
    watched_pk: int
    cookie: str
    web: Cpu
    worker: Cpu


def prepare(args: argparse.Namespace, supervisor: Supervisor) -> Setup:
    """Database, nodes and tokens, a signed-in session, then the web server and the worker."""
    workdir = Path(tempfile.mkdtemp(prefix="wnd-bench-"))
    env = {**os.environ, "WND_VAR_DIR": str(workdir), "WND_LOG_LEVEL": "ERROR", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    if args.postgres:
        args.database_url = start_postgres(supervisor, workdir / "postgres")
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    if "REDIS_URL" not in env:
        env["REDIS_URL"] = supervisor.start_redis(free_port(), workdir / "redis")
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from dashboard.models import enroll
    from tests.integration.live import session_cookie

    call_command("migrate", verbosity=0)
    if args.database_url:
        call_command("flush", interactive=False, verbosity=0)  # a throwaway database: start each run empty
    tokens = {}
    watched_pk = 0
    for i in range(args.nodes):
        name = WATCHED if i == 0 else f"win-{i:04d}"
        node, tokens[name] = enroll("bench", name)
        watched_pk = watched_pk or node.pk
    if args.fleet_nodes:
        from dashboard.models import Cluster, Node

        fleet = Cluster.objects.create(name="fleet")
        healths = ["ok", "ok", "ok", "warning", "critical", "unknown"]
        Node.objects.bulk_create(
            [
                Node(cluster=fleet, name=f"win-{i:05d}", health=healths[i % 6], warning_count=i % 6 == 3)
                for i in range(args.fleet_nodes)
            ],
            batch_size=500,
        )
    cookie = session_cookie(User.objects.create_user("bench"))
    hot_path(tokens[WATCHED])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supervisor.start("web", web_command(port), env=env)
    supervisor.start("worker", worker_command(concurrency=args.worker_concurrency, loglevel="ERROR"), env=env)
    wait_for_http(f"{url}/healthz")
    pids = {name: proc.pid for name, proc in supervisor.children}
    return Setup(env, url, tokens, watched_pk, cookie, Cpu(pids["web"]), Cpu(pids["worker"]))


def hot_path(raw_token: str, rounds: int = 2000) -> None:
    """Time the web process's share of a stored report besides parsing: the token lookup and the enqueue.

    The enqueue is timed both ways: when a check of the node already waits (the marker is set:
    one Redis command) and when a task is sent (a throwaway queue, emptied after).
    """
    from celery import current_app

    from dashboard import live, queue
    from dashboard.models import AgentToken

    def per_call(func: Any) -> str:
        """CPU time per call in this process (the cost), and wall time (with the round trips)."""
        func()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            func()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return f"{1e6 * cpu / rounds:.0f} µs CPU ({1e6 * wall / rounds:.0f} µs wall)"

    client = live.redis_client()
    lookup = per_call(lambda: AgentToken.authenticate(raw_token))
    client.set("wnd:check-queued:0", 1)
    waiting = per_call(lambda: queue.check_node(0))
    sent = per_call(
        lambda: (
            client.set("wnd:check-queued:-1", 1, nx=True, ex=1),
            current_app.send_task(queue.CHECK_NODE, args=(0,), queue="wnd-bench-hot-path"),
        )
    )
    client.delete("wnd:check-queued:0", "wnd:check-queued:-1", "wnd-bench-hot-path")
    print(f"hot path: token lookup {lookup}; enqueue {waiting} when a check waits, {sent} to send")


def fleet_page(url: str, cookie: str, nodes: int) -> None:
    """Time the fleet page (first page, unfiltered, and filtered by severity) on loopback: ~ server time."""
    import urllib.request

    for path in ("/", "/?severity=warning"):
        times = []
        for _ in range(11):
            request = urllib.request.Request(url + path, headers={"Cookie": cookie})
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"fleet page {path!r} with {nodes} nodes: median {1000 * times[5]:.1f} ms, max {1000 * times[-1]:.1f} ms")


def start_postgres(supervisor: Supervisor, directory: Path) -> str:
    """A throwaway PostgreSQL cluster in ``directory`` (initdb + postgres on a free port); its URL.

    As root, the cluster belongs to the ``postgres`` user: PostgreSQL refuses to run as root.
    """
    import shutil
    import subprocess

    found = [shutil.which("initdb"), *map(str, sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1:])]
    initdb = next((path for path in found if path), None)
    if initdb is None:
        raise SystemExit("no PostgreSQL found: apt-get install postgresql, or pass --database-url")
    initdb = str(Path(initdb).resolve())  # /usr/local/bin/initdb may be a link into the version's bin/
    server = str(Path(initdb).with_name("postgres"))
    directory.mkdir(parents=True)
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
        directory.parent.chmod(0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = directory / "data"
    subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "bench", "--no-sync"],
                   check=True, capture_output=True)  # fmt: skip
    port = free_port()
    options = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
               "-c", f"unix_socket_directories={directory}", "-c", "max_connections=200"]  # fmt: skip
    supervisor.start("postgres", [*prefix, server, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", *options],
                     quiet=True)  # fmt: skip
    wait_for_port(port)
    time.sleep(0.5)
    subprocess.run([*prefix, str(Path(initdb).with_name("createdb")), "-h", "127.0.0.1", "-p", str(port),
                    "-U", "bench", "bench"], check=True)  # fmt: skip
    return f"postgres://bench@127.0.0.1:{port}/bench"


async def run(args: argparse.Namespace, setup: Setup) -> int:
    import aiohttp
    import redis as redis_lib
    import websockets

    env, url, tokens, watched_pk, cookie = setup.env, setup.url, setup.tokens, setup.watched_pk, setup.cookie
    if True:
        watcher = Watcher()
        path = f"/ws/clusters/bench/nodes/{WATCHED}/" if args.page == "node" else f"/ws/fleet/?q={WATCHED}"

        async def client() -> None:
            # A browser's page reconnects when its socket closes (htmx's ws extension), and gets the
            # full state on connect: so does each client here.
            while True:
                try:
                    async with websockets.connect(
                        url.replace("http", "ws") + path,
                        max_size=None,
                        additional_headers={"Cookie": cookie, "Origin": url},
                    ) as ws:
                        async for frame in ws:
                            watcher.saw(str(frame), watched_pk, args.page)
                except (OSError, websockets.ConnectionClosed):
                    watcher.reconnects += 1
                    await asyncio.sleep(0.5)

        if args.fleet_nodes:
            fleet_page(url, cookie, args.fleet_nodes + args.nodes)
        clients = [asyncio.create_task(client()) for _ in range(args.clients)]
        await asyncio.sleep(2)
        print(
            f"{args.clients} WebSocket clients on the {args.page} page; {args.nodes} nodes; "
            f"{args.step_seconds:.0f} s per rate; worker concurrency {args.worker_concurrency}; "
            f"{args.traffic} traffic; {'PostgreSQL' if args.database_url else 'SQLite'}"
        )
        broker = redis_lib.Redis.from_url(env["REDIS_URL"])
        sequences = dict.fromkeys(tokens, 0)
        facts = dict.fromkeys(tokens, 0)
        locks = {name: asyncio.Lock() for name in tokens}
        names = [n for n in tokens if n != WATCHED]
        results: list[Step] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            # Warm-up: every node's first report (new to the dashboard: all checked), so that the
            # steps measure a running fleet; the all-changed case is ``--traffic changed``.
            warm = time.monotonic()
            for first in range(0, len(tokens), 20):
                batch = []
                for name in list(tokens)[first : first + 20]:
                    sequences[name] += 1
                    body = make_report("bench", name, sequences[name])
                    headers = {"Authorization": f"Bearer {tokens[name]}", "Content-Encoding": "gzip"}
                    batch.append(session.post(f"{url}/api/v1/reports", data=body, headers=headers))
                for response in await asyncio.gather(*batch):
                    response.release()
            while broker.llen("celery") and time.monotonic() < warm + 120:
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
            print(f"warm-up: the first reports of {len(tokens)} nodes checked in {time.monotonic() - warm:.1f} s")
            for rate in args.rates:
                step = Step(rate)
                watched: list[tuple[int, float]] = []

                async def send(
                    name: str, body: bytes, step: Step = step, watched: list[tuple[int, float]] = watched
                ) -> None:
                    async with locks[name]:  # an agent sends its reports one after the other
                        await post_one(name, body, step, watched)

                async def post_one(name: str, body: bytes, step: Step, watched: list[tuple[int, float]]) -> None:
                    headers = {
                        "Authorization": f"Bearer {tokens[name]}",
                        "Content-Encoding": "gzip",
                        "Content-Type": "application/json",
                    }
                    try:
                        try:
                            response = await session.post(f"{url}/api/v1/reports", data=body, headers=headers)
                        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                            # A kept-alive connection the server closed as it was reused: an agent sends
                            # again (the sequence makes it safe), and so does the bench, once.
                            response = await session.post(f"{url}/api/v1/reports", data=body, headers=headers)
                        async with response:
                            data = await response.json()
                            if response.status == 202:
                                step.accepted += 1
                                if name == WATCHED:
                                    watched.append((int(data["report"]), time.monotonic()))
                            elif response.status == 200 and data.get("status") == "unchanged":
                                step.accepted += 1  # recorded: nothing new to check or show
                            else:
                                step.refused[response.status] = step.refused.get(response.status, 0) + 1
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        if not step.errors:
                            print(f"        first error: {type(exc).__name__}: {exc}", flush=True)
                        step.errors += 1

                # The reports are built before the clock starts: the load generator
                # shares the machine's two cores with the server it measures.
                def build(rate: int = rate) -> list[tuple[str, bytes]]:
                    schedule = []
                    for i in range(int(rate * args.step_seconds)):
                        name = WATCHED if i % args.watch_every == 0 else names[i % len(names)]
                        sequences[name] += 1
                        new_lines, new_fact = (
                            (True, args.traffic == "changed") if name == WATCHED else traffic(args.traffic, i)
                        )
                        if new_fact:
                            facts[name] += 1
                        body = make_report("bench", name, sequences[name], new_lines=new_lines, fact=facts[name])
                        schedule.append((name, body))
                    return schedule

                # In a thread: the clients' sockets keep answering pings meanwhile.
                schedule = await asyncio.to_thread(build)
                pending = []
                cpu_web, cpu_worker = setup.web.seconds(), setup.worker.seconds()
                start = time.monotonic()
                for i, (name, body) in enumerate(schedule):
                    target = start + i / rate
                    delay = target - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    pending.append(asyncio.create_task(send(name, body)))
                    step.sent += 1
                step.elapsed = time.monotonic() - start
                await asyncio.gather(*pending)
                step.backlog = int(broker.llen("celery"))
                # Drain the backlog (bounded), then give the watched reports' frames 5 s more: a report
                # no frame ever showed is missing (a late one counts in the latencies).
                drain_start = time.monotonic()
                while broker.llen("celery") and time.monotonic() < drain_start + 60:
                    await asyncio.sleep(0.1)
                drained = time.monotonic() - drain_start
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and any(watcher.latency(r, t) is None for r, t in watched):
                    await asyncio.sleep(0.05)
                for report_id, accepted_at in watched:
                    latency = watcher.latency(report_id, accepted_at)
                    if latency is None:
                        step.missing += 1
                    else:
                        step.latencies.append(latency)
                results.append(step)
                step.web_cpu = setup.web.seconds() - cpu_web
                step.worker_cpu = setup.worker.seconds() - cpu_worker
                print(step.line(), flush=True)
                if step.backlog:
                    print(f"        backlog drained in {drained:.1f} s", flush=True)
                if not step.ok and args.stop_on_fail:
                    break
        for task in clients:
            task.cancel()
        if watcher.reconnects:
            print(f"(the clients' sockets were closed and opened again {watcher.reconnects} times)")
        passing = [s for s in results if s.ok]
        if passing:
            best = max(passing, key=lambda s: s.rate)
            print(f"\nhighest sustained rate with nothing failing: {best.rate} reports/s")
            print(best.line())
        else:
            print("\nno rate passed")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--page", choices=["node", "fleet"], default="node")
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=[25, 50, 100, 125, 150, 200])
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--watch-every", type=int, default=10, help="every Nth report is for the watched node")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--stop-on-fail", action="store_true")
    parser.add_argument("--fleet-nodes", type=int, default=0, help="time the fleet page with this many more nodes")
    parser.add_argument("--traffic", choices=["realistic", "changed"], default="realistic")
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL cluster for the run")
    parser.add_argument(
        "--database-url",
        help="a throwaway database (e.g. postgres://user@127.0.0.1:5433/bench), emptied first; default: SQLite",
    )
    args = parser.parse_args()
    supervisor = Supervisor()
    try:
        return asyncio.run(run(args, prepare(args, supervisor)))
    finally:
        supervisor.stop()


if __name__ == "__main__":
    raise SystemExit(main())
