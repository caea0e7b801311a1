"""Benchmark of the check engine and the log analyzers on one busy Windows node.

    python bench/bench_checks.py [--log-mb 50] [--runs 50]

Builds a node with 200 pods, 500 HNS endpoints (and Services/EndpointSlices to match)
and prints:

1. the median time of all checks on that snapshot, log analysis excluded (target <= 5 ms);
2. log analysis throughput of ``scan_file`` on generated kubelet/kube-proxy logs (target >= 50 MB/s);
3. the analyzer's peak memory (tracemalloc) on 10 MB and on the full size, to show it does not grow
   with the log.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diagnostics.facts import HnsEndpoint, HnsLoadBalancer, HnsPortMapping  # noqa: E402
from diagnostics.logs import scan_file  # noqa: E402
from diagnostics.registry import all_checks, run  # noqa: E402
from diagnostics.snapshot import Fact, NodeSnapshot  # noqa: E402
from tests.diagnostics.builders import healthy_pods, make_snapshot  # noqa: E402

PODS = 200
ENDPOINTS = 500


def busy_snapshot() -> NodeSnapshot:
    """The healthy test node, scaled up: 200 pods, 500 endpoints, one Service per 4 pods."""
    base = make_snapshot(logs={"kubelet": None, "kube-proxy": None, "flanneld": None})
    template = healthy_pods()[0]
    pods, endpoints, services, slices, policies = [], [], [], [], []
    for i in range(PODS):
        ip = f"10.244.2.{10 + i}" if i < 240 else f"10.244.2.{i % 240}"
        pod = {
            **template,
            "metadata": {**template["metadata"], "name": f"app-{i:03d}", "labels": {"app": f"svc-{i // 4}"}},
            "status": {**template["status"], "podIP": ip, "podIPs": [{"ip": ip}]},
        }
        pods.append(pod)
        endpoints.append(HnsEndpoint(f"EP-LOCAL-{i:04d}", f"ep{i}_cbr0", ip, "3D0B8C4A", "Attached"))
    for j in range(ENDPOINTS - PODS):
        endpoints.append(
            HnsEndpoint(f"EP-REMOTE-{j:04d}", "Ethernet", f"10.244.{3 + j // 200}.{j % 200 + 2}", is_remote=True)
        )
    for k in range(PODS // 4):
        vip = f"10.101.{k // 200}.{k % 200 + 1}"
        services.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"svc-{k}", "namespace": "default"},
                "spec": {
                    "clusterIP": vip,
                    "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                    "selector": {"app": f"svc-{k}"},
                    "type": "ClusterIP",
                },
            }
        )
        ips = [pods[4 * k + n]["status"]["podIP"] for n in range(4)]
        slices.append(
            {
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"svc-{k}-x",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": f"svc-{k}"},
                },
                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            }
        )
        policies.append(
            HnsLoadBalancer(
                f"LB-{k}",
                vips=(vip,),
                ports=(HnsPortMapping("TCP", 80, 80),),
                endpoint_ids=tuple(f"EP-LOCAL-{4 * k + n:04d}" for n in range(4)),
            )
        )
    remote_ips = [e.ip for e in endpoints if e.is_remote]
    slices.append(
        {
            "kind": "EndpointSlice",
            "metadata": {"name": "remote", "namespace": "default"},
            "endpoints": [{"addresses": remote_ips}],
        }
    )
    assert base.cluster_view is not None
    view = replace(base.cluster_view, services=tuple(services), endpoint_slices=tuple(slices))
    return replace(
        base,
        pods=Fact(tuple(pods), "api pods"),
        hns_endpoints=Fact(tuple(endpoints), "probe:hns.endpoints"),
        hns_policies=Fact(tuple(policies), "probe:hns.policies"),
        cluster_view=view,
    )


_KUBELET = (
    'I1124 {t} 4242 kubelet.go:2342] "SyncLoop (PLEG): event for pod" pod="default/app-{n:03d}" '
    'event={{"ID":"5d3f2b0a-8c1e-4e7b-9a2d-6f1c0e3b4a59","Type":"ContainerStarted","Data":"4c1f0e9a7b3d"}}',
    'I1124 {t} 4242 kuberuntime_manager.go:1029] "Creating PodSandbox for pod" pod="default/app-{n:03d}"',
    'I1124 {t} 4242 prober.go:107] "Probe failed" probeType="Readiness" pod="default/app-{n:03d}" '
    'podUID="7e6d5c4b-3a29-4817-9f6e-5d4c3b2a1908" containerName="iis" probeResult="failure" output="HTTP probe '
    'failed with statuscode: 503"',
    'W1124 {t} 4242 cni.go:239] "Unable to update cni config" err="no networks found in C:\\\\etc\\\\cni\\\\net.d"',
    'I1124 {t} 5120 proxier.go:1156] "Policy successfully applied for service" serviceInfo="default/svc-{n}:http"',
    'I1124 {t} 5120 proxier.go:1001] "Syncing HNS policies" elapsed="12.3{n}ms"',
)
_RARE = (
    'E1124 {t} 4242 remote_runtime.go:193] "RunPodSandbox from runtime service failed" err="rpc error: code = '
    'Unknown desc = failed to setup network for sandbox: plugin type=\\"flannel\\" failed (add): loadFlannelSubnetEnv '
    'failed: open C:\\\\run\\\\flannel\\\\subnet.env: The system cannot find the path specified."',
    'E1124 {t} 5120 proxier.go:1203] "Policy creation failed" err="hcnCreateLoadBalancer failed in Win32: The '
    'specified port already exists. (0x803b0013)"',
)


def write_log(path: Path, megabytes: int, seed: int = 7) -> int:
    """A kubelet-like log of about ``megabytes`` MB with CRLF ends and a rare known error."""
    rnd = random.Random(seed)
    target = megabytes * 1_000_000
    written = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        while written < target:
            lines = []
            for _ in range(2000):
                t = f"10:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}.{rnd.randint(0, 999999):06d}   "
                pool = _RARE if rnd.random() < 0.0002 else _KUBELET
                lines.append(rnd.choice(pool).format(t=t, n=rnd.randint(0, 199)))
            chunk = "\r\n".join(lines) + "\r\n"
            fh.write(chunk)
            written += len(chunk)
    return path.stat().st_size


def bench_checks(snap: NodeSnapshot, runs: int) -> float:
    run(snap)  # warm-up: imports, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        findings = run(snap)
        times.append(time.perf_counter() - start)
    assert not [f for f in findings if f.summary.startswith("The check itself failed")]
    return statistics.median(times)


def bench_logs(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    hits = sum(1 for _ in scan_file(path, kind="kubelet"))
    return time.perf_counter() - start, hits


def peak_memory(path: Path) -> int:
    tracemalloc.start()
    for _ in scan_file(path, kind="kubelet"):
        pass
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-mb", type=int, default=50)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    snap = busy_snapshot()
    median = bench_checks(snap, args.runs)
    print(
        f"checks: {len(all_checks())} checks, {PODS} pods, {ENDPOINTS} HNS endpoints: "
        f"median {median * 1000:.2f} ms per node over {args.runs} runs (target <= 5 ms)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "kubelet-10.log", Path(tmp) / f"kubelet-{args.log_mb}.log"
        write_log(small, 10)
        size = write_log(big, args.log_mb)
        seconds, hits = bench_logs(big)
        print(
            f"logs: {size / 1e6:.1f} MB in {seconds:.2f} s = {size / 1e6 / seconds:.0f} MB/s, {hits} hits "
            "(target >= 50 MB/s)"
        )
        for path in (small, big):
            print(f"memory: peak {peak_memory(path) / 1e6:.1f} MB while analysing {path.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
