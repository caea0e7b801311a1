"""Export of a node with 200 MB of logs: time against ``tar czf`` of the same files, and peak memory growth.

    python bench/bench_bundle.py [--mb 200] [--format tar.gz|zip] [--redact-ips]

Targets: <= 1.5x the time of ``tar czf`` with redaction on; <= 64 MB peak memory growth.
The logs are klog lines like a busy kubelet's (volume mounts, sandbox errors, a few
secrets), generated once into a temporary folder.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diagnostics.bundle.redact import RedactOptions
from diagnostics.bundle.writer import LogSource, NodeBundle, write_bundle

LINES = (
    'I1124 10:{m:02d}:{s:02d}.{us:06d}    4242 kubelet.go:2342] "SyncLoop (PLEG): event for pod" '
    'pod="default/iis-web-{n}" event={{"ID":"5d3f2b0a-8c1e","Type":"ContainerStarted"}}\r\n',
    'I1124 10:{m:02d}:{s:02d}.{us:06d}    4242 operation_generator.go:721] "MountVolume.SetUp succeeded for volume '
    '\\"kube-api-access-x7k2p\\" (UniqueName: \\"kubernetes.io/projected/{n}-kube-api-access\\")" '
    'pod="default/web-{n}"\r\n',
    'E1124 10:{m:02d}:{s:02d}.{us:06d}    4242 remote_runtime.go:193] "RunPodSandbox from runtime service failed" '
    'err="rpc error: code = Unknown desc = failed to setup network for sandbox: plugin type=\\"flannel\\" failed"\r\n',
    'I1124 10:{m:02d}:{s:02d}.{us:06d}    4242 reconciler.go:357] "VerifyControllerAttachedVolume started for volume '
    '\\"default-secret-{n}\\" (UniqueName: \\"kubernetes.io/secret/{n}-default-secret\\")" podIP=10.244.3.{o}\r\n',
    'I1124 10:{m:02d}:{s:02d}.{us:06d}    4242 kubelet_node_status.go:497] "Fast updating node status" '
    'node="win-node-01"\r\n',
    'I1124 10:{m:02d}:{s:02d}.{us:06d}    4242 round_trippers.go:466] curl -v -XGET -H "Authorization: Bearer '
    'kUb3l3tB3ar3rT0k3n{n}" https://10.0.0.4:6443/api/v1/nodes/win-node-01\r\n',
)
WEIGHTS = (40, 25, 10, 15, 9, 1)


def make_logs(folder: Path, total_mb: int) -> list[Path]:
    rng = random.Random(7)
    paths = []
    per_file = total_mb * 1024 * 1024 // 4
    for name in ("kubelet", "kube-proxy", "flanneld", "containerd"):
        path = folder / f"{name}.log"
        with path.open("w", encoding="utf-8", newline="") as fh:
            size = 0
            while size < per_file:
                block = "".join(
                    rng.choices(LINES, WEIGHTS)[0].format(
                        m=rng.randrange(60),
                        s=rng.randrange(60),
                        us=rng.randrange(10**6),
                        n=rng.randrange(9999),
                        o=rng.randrange(254),
                    )
                    for _ in range(2000)
                )
                fh.write(block)
                size += len(block)
        paths.append(path)
    return paths


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--format", choices=("tar.gz", "zip"), default="tar.gz")
    parser.add_argument("--redact-ips", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wnd-bench-") as tmp:
        folder = Path(tmp)
        (folder / "logs").mkdir()
        logs = make_logs(folder / "logs", args.mb)
        total = sum(p.stat().st_size for p in logs)

        started = time.perf_counter()
        subprocess.run(["tar", "czf", str(folder / "ref.tar.gz"), "-C", str(folder), "logs"], check=True)
        tar_seconds = time.perf_counter() - started

        node = NodeBundle(
            node="win-node-01",
            cluster="prod-eu",
            logs=[LogSource(p.stem, f"C:\\k\\{p.name}", path=p) for p in logs],
        )
        options = RedactOptions(ips=args.redact_ips)
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        with (folder / f"bundle.{args.format}").open("wb") as out:
            summary = write_bundle(out, [node], fmt=args.format, options=options, now=datetime.now(UTC))
        ours = time.perf_counter() - started
        growth = peak_rss_mb() - rss_before

        print(f"logs: {total / 2**20:.0f} MiB in {len(logs)} files")
        ref_mb = (folder / "ref.tar.gz").stat().st_size / 2**20
        print(f"tar czf: {tar_seconds:.2f} s ({total / 2**20 / tar_seconds:.1f} MiB/s), {ref_mb:.1f} MiB")
        print(
            f"export ({args.format}, redaction: secrets{', addresses' if args.redact_ips else ''}): {ours:.2f} s, "
            f"{(folder / f'bundle.{args.format}').stat().st_size / 2**20:.1f} MiB, redacted {summary.redactions}"
        )
        ratio = ours / tar_seconds
        print(f"ratio to tar czf: {ratio:.2f}x (target <= 1.5x) {'OK' if ratio <= 1.5 else 'OVER'}")
        print(f"peak memory growth: {growth:.1f} MiB (target <= 64 MiB) {'OK' if growth <= 64 else 'OVER'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
