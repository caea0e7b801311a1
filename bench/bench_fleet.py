"""Benchmark of the fleet page on a large fleet.

    python bench/bench_fleet.py [--nodes 5000] [--runs 20]

Fills a fresh SQLite database with ``--nodes`` Windows nodes in three clusters (a spread of
health: 5 % critical, 15 % warning, 10 % without data, the rest healthy; two or three open
findings on each unhealthy node, some acknowledged or silenced; the data is invented, its
shape is the demo's), then prints the server time (median and worst of ``--runs``, and the
median CPU time of this process, which a busy machine inflates less) of:

1. the whole fleet page, as a signed-in operator gets it (middleware, view, template) (target <= 100 ms);
2. the live frame the fleet's WebSocket consumer renders on every change (target <= 100 ms);
3. the page filtered by a cluster and a check area, and sorted by name;
4. the page grouped by cluster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["WND_VAR_DIR"] = tempfile.mkdtemp(prefix="wnd-bench-fleet-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.template.loader import render_to_string  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from dashboard.access.roles import OPERATOR_GROUP  # noqa: E402
from dashboard.models import Cluster, Finding, Node  # noqa: E402
from dashboard.pages.fleet import FleetQuery, fleet_context  # noqa: E402

CHECKS = [
    ("hns.network-missing", "critical", "The HNS container network is missing"),
    ("flannel.subnet-env-missing", "critical", "Flannel's subnet.env is missing"),
    ("kube-proxy.hostname-override", "warning", "kube-proxy runs without --hostname-override"),
    ("node.version-skew", "warning", "Kubelet version is skewed"),
    ("pause.image-incompatible", "critical", "The pause image does not match the host"),
    ("dns.pqdn-unsupported", "info", "Partially qualified names do not resolve"),
]


def fill(count: int) -> None:
    now = timezone.now()
    clusters = [Cluster.objects.create(name=name) for name in ("prod-eu", "prod-us", "staging")]
    nodes = []
    for i in range(count):
        kind = i % 20
        health, rank = (
            ("critical", 3)
            if kind == 0
            else ("warning", 2)
            if kind in (1, 2, 3)
            else ("unknown", -1)
            if kind in (4, 5)
            else ("ok", 0)
        )
        nodes.append(
            Node(
                cluster=clusters[i % 3],
                name=f"win-{i:05d}",
                health=health,
                health_rank=rank,
                last_report_at=None if health == "unknown" else now,
                os_build="10.0.20348.2340",
                runtime_version="containerd://1.7.20",
                kubelet_version="v1.30.4",
            )
        )
    Node.objects.bulk_create(nodes, batch_size=1000)
    findings = []
    updates = []
    for i, node in enumerate(Node.objects.filter(health__in=("critical", "warning")).order_by("id")):
        chosen = [CHECKS[(i + k) % len(CHECKS)] for k in range(2 + i % 2)]
        if node.health == "critical" and not any(sev == "critical" for _c, sev, _t in chosen):
            chosen[0] = CHECKS[0]
        if node.health == "warning":
            chosen = [c for c in chosen if c[1] != "critical"] or [CHECKS[2]]
        counts = {"critical": 0, "warning": 0, "info": 0}
        for n, (check_id, severity, title) in enumerate(chosen):
            counts[severity] += 1
            findings.append(
                Finding(
                    node=node,
                    check_id=check_id,
                    severity=severity,
                    title=title,
                    summary="invented for the benchmark",
                    acknowledged_at=now if (i + n) % 7 == 0 else None,
                    silenced_until=now + timezone.timedelta(hours=4) if (i + n) % 11 == 0 else None,
                )
            )
        node.critical_count, node.warning_count, node.info_count = counts["critical"], counts["warning"], counts["info"]
        node.open_checks = " " + " ".join(c for c, _s, _t in chosen) + " "
        updates.append(node)
    Finding.objects.bulk_create(findings, batch_size=1000)
    Node.objects.bulk_update(updates, ["critical_count", "warning_count", "info_count", "open_checks"], batch_size=1000)


def measure(label: str, runs: int, action: Callable[[], object], target: float | None = None) -> None:
    action()  # warm: templates compiled, connections open
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    median = statistics.median(times)
    verdict = "" if target is None else (" OK" if median <= target else f" OVER the {target:.0f} ms target")
    cpu_median = statistics.median(cpu)
    print(f"{label:<52} median {median:6.1f} ms (CPU {cpu_median:5.1f} ms)   worst {max(times):6.1f} ms{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()

    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    fill(options.nodes)
    print(
        f"{options.nodes} nodes, {Finding.objects.count()} open findings "
        f"(filled in {time.perf_counter() - start:.1f} s; page size {settings.WND_FLEET_PAGE_SIZE})"
    )

    user = User.objects.create_user("bench")
    user.groups.add(Group.objects.get_or_create(name=OPERATOR_GROUP)[0])
    client = Client()
    client.force_login(user)

    def page(params: dict[str, str]) -> Callable[[], object]:
        def get() -> object:
            response = client.get("/", params)
            assert response.status_code == 200, response.status_code
            return response

        return get

    def frame() -> str:
        context = {**fleet_context(FleetQuery()), "oob": True, "is_operator": True}
        return render_to_string("dashboard/fleet.html#fleet-live", context)

    measure("1. fleet page, worst first (operator)", options.runs, page({}), target=100)
    measure("2. live frame (sources, summary, heatmap, table)", options.runs, frame, target=100)
    measure(
        "3. filtered by cluster and area, sorted by name",
        options.runs,
        page({"cluster": "prod-eu", "area": "hns", "sort": "name"}),
    )
    measure("4. grouped by cluster", options.runs, page({"group": "cluster"}))


if __name__ == "__main__":
    main()
