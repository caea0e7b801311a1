"""Check modules, one per area; importing this package registers every check."""

from __future__ import annotations

from diagnostics.checks import (
    cni,
    dns,
    flannel,
    hns,
    image,
    kube_proxy,
    network,
    node,
    os,
    pause,
    runtime,
    security,
    service,
    workload,
)

__all__ = [
    "cni",
    "dns",
    "flannel",
    "hns",
    "image",
    "kube_proxy",
    "network",
    "node",
    "os",
    "pause",
    "runtime",
    "security",
    "service",
    "workload",
]
