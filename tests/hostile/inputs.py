"""Hostile uploads for the Diagnose page, generated (invented data): big structured files and slow YAML.

- ``inflating_bundle``: a tar.gz whose structured files inflate to hundreds of MiB
  (JSON objects parse to about ten times their size in memory);
- ``yaml_bundle``: a small tar.gz of many large Kubernetes YAML lists (slow to parse,
  large once parsed), compressed about 100x.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

MiB = 1024 * 1024


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def _endpoints(rng: random.Random, size: int) -> bytes:
    """Get-HnsEndpoint JSON of about ``size`` bytes (random ids and addresses, so it compresses only ~7x)."""
    items = []
    total = 0
    while total < size:
        item = {
            "ID": f"{rng.getrandbits(128):032x}",
            "Name": "Ethernet",
            "IPAddress": f"10.244.{rng.randrange(256)}.{rng.randrange(256)}",
            "MacAddress": f"00-15-5D-{rng.randrange(256):02X}-{rng.randrange(256):02X}-{rng.randrange(256):02X}",
            "VirtualNetwork": f"{rng.getrandbits(128):032x}",
            "Policies": [{"Type": "OutBoundNAT", "ExceptionList": [f"{rng.getrandbits(32):08x}" for _ in range(8)]}],
        }
        items.append(item)
        total += 420
    return json.dumps(items).encode()


def _pods(rng: random.Random, size: int) -> bytes:
    """A ``kind: List`` of pods in YAML, about ``size`` bytes."""
    lines = ["apiVersion: v1", "kind: List", "items:"]
    total = 0
    while total < size:
        name = f"web-{rng.getrandbits(12):03x}"
        block = (
            f"- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: {name}\n    namespace: default\n"
            "    labels: {app: web, pod-template-hash: 7dd9c5f4b}\n"
            "  spec:\n    nodeName: win-node-01\n    containers:\n    - name: iis\n"
            "      image: mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022\n"
            "      ports: [{containerPort: 80, protocol: TCP}]\n"
            f"  status: {{phase: Running, podIP: 10.244.1.{rng.randrange(16)}}}"
        )
        lines.append(block)
        total += len(block) + 1
    return ("\n".join(lines) + "\n").encode()


def inflating_bundle(dest: Path, *, inflated_mb: int = 128) -> Path:
    """A tar.gz of an HNS endpoint dump inflating to ``inflated_mb`` MiB (about 36 MB for 128).

    8 MiB of endpoints, repeated: gzip's 32 KiB window does not see the repeats, so the
    archive is as large as random endpoints would make it, and it is quick to build.
    """
    rng = random.Random(15)
    chunk = _endpoints(rng, 8 * MiB)[1:-1]
    copies = max(1, inflated_mb // 8)
    data = b"[" + b",".join([chunk] * copies) + b"]"
    with tarfile.open(dest, "w:gz", compresslevel=1) as tf:
        _add(tf, "win-node-01/node/hnsendpoints.json", data)
    return dest


def yaml_bundle(dest: Path, *, files: int = 14, file_mb: int = 8) -> Path:
    """A tar.gz of ``files`` Kubernetes YAML lists of ``file_mb`` MiB each (about 1.7 MB for 14 x 8)."""
    rng = random.Random(16)
    one = _pods(rng, file_mb * MiB)
    with tarfile.open(dest, "w:gz", compresslevel=9) as tf:
        for i in range(files):
            _add(tf, f"win-node-01/cluster/pods-{i:02d}.yaml", one)
    return dest


def objects_bundle(dest: Path, *, mb: int = 30) -> Path:
    """A tar.gz of one ``PodList`` JSON of about ``mb`` MiB: under the reader's cap, costly to hold once parsed."""
    rng = random.Random(17)
    pods = []
    total = 0
    while total < mb * MiB:
        name = f"web-{rng.getrandbits(32):08x}"
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "labels": {"app": "web", "n": str(len(pods))}},
                "spec": {"nodeName": "win-node-01", "containers": [{"name": "iis", "image": "iis:ltsc2022"}]},
                "status": {"phase": "Running", "podIP": f"10.244.{rng.randrange(256)}.{rng.randrange(256)}"},
            }
        )
        total += 330
    data = json.dumps({"apiVersion": "v1", "kind": "PodList", "items": pods}).encode()
    with tarfile.open(dest, "w:gz", compresslevel=1) as tf:
        _add(tf, "win-node-01/cluster/pods.json", data)
    return dest
