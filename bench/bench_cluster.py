"""Benchmark of the cluster source on a large simulated cluster.

    python bench/bench_cluster.py [--nodes 5000] [--windows 1000] [--pods 50000]

Builds a cluster (Linux and Windows nodes, pods spread over them, one Service and
EndpointSlice per 10 pods, a sandbox event per 100 Windows pods) behind
``SimulatedSource``, stores it in a fresh SQLite database the way the watcher
does, and prints:

1. the initial sync: every kind listed into the store, the workload checks on every kept pod,
   every Windows node diagnosed (target <= 60 s);
2. the process's peak memory (RSS; it includes the simulated API server's own copy) (target <= 1 GB);
3. one pod change: the pod's event applied, its workload findings and its node re-checked, then
   its EndpointSlice's change and the cluster-wide checks re-run on every Windows node (target <= 1 s);
4. one Windows node's kubelet version change: the peer checks re-run on every Windows node (target <= 1 s);
5. an API server upgrade that changes every Windows node's findings: the peer checks re-run and
   every node's findings stored (target <= 1 s).
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["WND_VAR_DIR"] = tempfile.mkdtemp(prefix="wnd-bench-cluster-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

import django  # noqa: E402

django.setup()

from django.apps import apps  # noqa: E402
from django.db import connection  # noqa: E402

from dashboard import live  # noqa: E402
from dashboard.cluster.diagnose import (  # noqa: E402
    ENDPOINT_CHECKS,
    PEER_CHECKS,
    check_all_workloads,
    check_workloads,
    recheck_nodes,
)
from dashboard.cluster.models import SourceState  # noqa: E402
from dashboard.cluster.resources import BY_KIND, ENDPOINT_SLICES, PODS, RESOURCES  # noqa: E402
from dashboard.cluster.simulated import RECORDED, SimulatedSource  # noqa: E402
from dashboard.cluster.store import Store  # noqa: E402
from dashboard.models import Finding  # noqa: E402
from tests.dashboard.cluster.conftest import api_list  # noqa: E402


def build(nodes: int, windows: int, pods: int) -> dict[str, list[dict[str, Any]]]:
    """Objects shaped like the recorded demo's, multiplied: real field sets, distinct names and addresses."""
    win_node = next(n for n in api_list("nodes")["items"] if n["metadata"]["name"] == "win-2022")
    lnx_node = next(n for n in api_list("nodes")["items"] if n["metadata"]["name"] == "lnx-01")
    pod = next(p for p in api_list("pods")["items"] if p["metadata"]["name"] == "clean-5d8f7c6b9-rrrrr")
    event = api_list("events")["items"][0]
    service = next(s for s in api_list("services")["items"] if s["metadata"]["name"] == "web")
    web_slice = next(s for s in api_list("endpointslices")["items"] if s["metadata"]["name"].startswith("web-"))
    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in BY_KIND}
    names = []
    for i in range(nodes):
        is_windows = i < windows
        node = copy.deepcopy(win_node if is_windows else lnx_node)
        name = f"{'win' if is_windows else 'lnx'}-{i:05d}"
        node["metadata"]["name"] = name
        node["metadata"]["uid"] = f"00000000-0000-4000-8000-{i:012d}"
        node["spec"]["podCIDR"] = node["spec"]["podCIDRs"][0] = f"10.{64 + i // 256}.{i % 256}.0/24"
        out["Node"].append(node)
        names.append((name, is_windows, i))
    for j in range(pods):
        name, is_windows, i = names[j % nodes]
        p = copy.deepcopy(pod)
        p["metadata"].update(
            name=f"app-{j:06d}", namespace=f"team-{j % 40:02d}", uid=f"10000000-0000-4000-8000-{j:012d}"
        )
        p["spec"]["nodeName"] = name
        if not is_windows:
            p["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
            p["spec"]["containers"][0]["image"] = "registry.example.com/shop/api:2.4.1"
        ip = f"10.{64 + i // 256}.{i % 256}.{10 + (j // nodes) % 240}"
        p["status"]["podIP"] = ip
        p["status"]["podIPs"] = [{"ip": ip}]
        out["Pod"].append(p)
        if is_windows and j % 100 == 0:
            e = copy.deepcopy(event)
            e["metadata"].update(name=f"app-{j:06d}.17f{j:010x}", namespace=p["metadata"]["namespace"])
            e["involvedObject"].update(name=p["metadata"]["name"], namespace=p["metadata"]["namespace"])
            out["Event"].append(e)
    for k in range(pods // 10):
        s = copy.deepcopy(service)
        s["metadata"].update(name=f"svc-{k:05d}", namespace=f"team-{k % 40:02d}")
        s["spec"]["clusterIP"] = s["spec"]["clusterIPs"][0] = f"10.{96 + k // 65536}.{(k // 256) % 256}.{k % 256}"
        out["Service"].append(s)
        es = copy.deepcopy(web_slice)
        es["metadata"].update(name=f"svc-{k:05d}-x7k2p", namespace=f"team-{k % 40:02d}")
        es["metadata"]["labels"]["kubernetes.io/service-name"] = f"svc-{k:05d}"
        members = out["Pod"][k * 10 : k * 10 + 10]
        es["endpoints"] = [
            {"addresses": [m["status"]["podIP"]], "conditions": {"ready": True}, "nodeName": m["spec"]["nodeName"]}
            for m in members
        ]
        out["EndpointSlice"].append(es)
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=50000)
    args = parser.parse_args()
    assert RECORDED.is_dir()

    with connection.schema_editor() as editor:
        for model in apps.get_models():
            editor.create_model(model)
    live.publish_many = lambda messages: None  # no browsers: measure the work, not Redis

    started = time.perf_counter()
    source = SimulatedSource("bench", build(args.nodes, args.windows, args.pods), version="v1.31.1")
    built = time.perf_counter() - started
    print(f"cluster built: {args.nodes} nodes ({args.windows} Windows), {args.pods} pods, "
          f"{len(source.objects('Service'))} services and slices, {len(source.objects('Event'))} events "
          f"in {built:.1f} s")  # fmt: skip

    # 1. Initial sync, as ClusterSync does it.
    before = rss_mb()
    started = time.perf_counter()
    store = Store("bench", notify=lambda nodes: None)
    SourceState.objects.create(
        cluster=store.cluster, state=SourceState.CONNECTED, server_version=source.server_version()
    )
    for kind in RESOURCES:
        store.replace(kind, source.list(kind))
    listed = time.perf_counter() - started
    workload_findings = check_all_workloads(store.cluster)
    checked = time.perf_counter() - started
    recheck_nodes(store.cluster, sorted(store.windows_nodes))
    synced = time.perf_counter() - started
    print(f"initial sync: {synced:.1f} s (store {listed:.1f} s, workload checks {checked - listed:.1f} s, "
          f"{len(store.windows_nodes)} Windows nodes diagnosed {synced - checked:.1f} s); "
          f"{len(store.pods)} pods kept, {workload_findings} workload findings   target <= 60 s")  # fmt: skip
    added = rss_mb() - before
    print(f"memory: peak {peak_rss_mb():.0f} MB RSS for the whole process, of which the simulated API server's "
          f"objects {before:.0f} MB before the sync; the sync added {added:.0f} MB   target <= 1024 MB")  # fmt: skip

    # 2. One pod change on a Windows node, and the EndpointSlice change it causes, as ClusterSync handles them.
    pod = source.get("Pod", "app-000007", "team-07")
    pod["spec"]["hostNetwork"] = True
    pod["status"]["podIP"] = pod["status"]["podIPs"][0]["ip"] = "10.64.7.250"
    es = source.get("EndpointSlice", "svc-00000-x7k2p", "team-00")
    es["endpoints"][7]["addresses"] = ["10.64.7.250"]
    windows_nodes = sorted(store.windows_nodes)
    started = time.perf_counter()
    affected = store.apply(PODS, source.apply("Pod", pod))
    check_workloads(store.cluster, sorted(affected.pods))
    recheck_nodes(store.cluster, sorted(affected.nodes))
    local = time.perf_counter() - started
    wide = store.apply(ENDPOINT_SLICES, source.apply("EndpointSlice", es))
    recheck_nodes(store.cluster, windows_nodes, only=ENDPOINT_CHECKS, agents_only=True)
    total = time.perf_counter() - started
    print(f"one pod change: its node and workload findings updated in {local * 1000:.0f} ms; with its "
          f"EndpointSlice change (endpoints={wide.endpoints}) and the endpoint checks re-run on the Windows "
          f"nodes that have an agent: {total * 1000:.0f} ms   target <= 1 s")  # fmt: skip

    # 3. The heaviest cluster-wide case: a Windows node's kubelet changes, every Windows node is compared again.
    node = source.get("Node", "win-00003")
    node["status"]["nodeInfo"]["kubeletVersion"] = "v1.27.16"
    started = time.perf_counter()
    peers = store.apply(BY_KIND["Node"], source.apply("Node", node))
    recheck_nodes(store.cluster, sorted(peers.nodes))
    changed = recheck_nodes(store.cluster, windows_nodes, only=PEER_CHECKS)
    took = time.perf_counter() - started
    print(f"one node's kubelet version changed (peers={peers.peers}): version-skew and config-drift re-run on "
          f"{len(windows_nodes)} Windows nodes in {took:.2f} s ({changed} node(s) with new findings)   "
          f"target <= 1 s")  # fmt: skip

    # 4. The widest write: the API server is upgraded past every kubelet's skew; each Windows node's findings change.
    SourceState.objects.filter(cluster=store.cluster).update(server_version="v1.35.0")
    started = time.perf_counter()
    changed = recheck_nodes(store.cluster, windows_nodes, only=PEER_CHECKS)
    took = time.perf_counter() - started
    opened = Finding.objects.filter(node__cluster=store.cluster, check_id="node.version-skew", resolved_at=None).count()
    print(f"API server upgraded to v1.35.0: version-skew and config-drift re-run and stored on {changed} Windows "
          f"nodes in {took:.2f} s ({opened} version-skew findings open)   target <= 1 s")  # fmt: skip
    print(f"peak memory at the end: {peak_rss_mb():.0f} MB RSS")


if __name__ == "__main__":
    main()
