"""DNS on Windows pods: one DNS suffix only, and no ClusterFirstWithHostNet."""

from __future__ import annotations

from collections.abc import Iterator

from diagnostics.checks.common import hit_evidence
from diagnostics.checks.workload import windows_workloads
from diagnostics.model import Evidence, Fail, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot

DOCS = "https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/#dns-windows"

Outcome = Iterator[Fail | Unknown]


def is_partially_qualified(name: str) -> bool:
    """``kubernetes.default`` / ``kubernetes.default.svc``: more than one label, not ending in the cluster domain."""
    name = name.strip().rstrip(".").lower()
    labels = name.split(".")
    return 2 <= len(labels) <= 3 and not name.endswith(".local") and (len(labels) == 2 or labels[-1] == "svc")


@check(
    "dns.pqdn-unsupported",
    severity=Severity.INFO,
    title="Partially qualified names do not resolve in Windows pods",
    docs=DOCS,
)
def pqdn_unsupported(snap: NodeSnapshot) -> Outcome:
    failed = [
        r
        for r in snap.connectivity
        if r.kind == "dns" and r.origin == "pod" and not r.ok and is_partially_qualified(r.target)
    ]
    hits = snap.hits("dns.pqdn-unsupported")
    if not failed and not hits:
        return
    names = sorted({r.target for r in failed})
    example = names[0] if names else "kubernetes.default"
    parts = example.split(".")
    fqdn = f"{parts[0]}.{parts[1]}.svc.cluster.local" if len(parts) >= 2 else example
    yield Fail(
        summary="Windows pods apply only one DNS suffix (their namespace's), so names like "
        f"{example} do not resolve there; use the fully qualified name or the bare service name.",
        evidence=(
            *(
                Evidence(f"connectivity dns from pod {r.detail.get('pod', '')}".strip(), f"{r.target}: {r.output}")
                for r in failed[:4]
            ),
            *hit_evidence(hits),
        ),
        fix=(
            f"Use {fqdn} (or a bare name for a Service in the pod's own namespace).",
            "Known Windows limitation: nothing to change on the node.",
        ),
    )


@check(
    "dns.clusterfirstwithhostnet",
    severity=Severity.WARNING,
    title="Pods use dnsPolicy ClusterFirstWithHostNet",
    docs=DOCS,
    reads={"workloads"},
)
def clusterfirstwithhostnet(snap: NodeSnapshot) -> Outcome:
    for w in windows_workloads(snap):
        if w.spec.get("dnsPolicy") == "ClusterFirstWithHostNet" and not w.host_process:
            yield w.fail(
                "dnsPolicy ClusterFirstWithHostNet is not supported on Windows (host networking is not available "
                "to Windows pods).",
                f"{w.spec_path}.dnsPolicy",
                "ClusterFirstWithHostNet",
                ("Use dnsPolicy: ClusterFirst (and drop hostNetwork).",),
            )
