"""The container runtime: supported versions for this kubelet."""

from __future__ import annotations

from collections.abc import Iterator

from diagnostics.checks.common import hit_evidence, kubelet_minor
from diagnostics.model import Evidence, Fail, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot
from diagnostics.versions import (
    CONTAINERD_MIN,
    CONTAINERD_MIN_FOR_CRI_V1,
    CRI_V1_ONLY_MINOR,
    DOCKER_MIN,
    DOCKERSHIM_REMOVED_MINOR,
    version_lt,
)

DOCS = "https://kubernetes.io/docs/setup/production-environment/container-runtimes/"

Outcome = Iterator[Fail | Unknown]
UPGRADE = (
    "Install a current containerd (1.7 or 2.x) as the runtime: stop kubelet, install containerd as a service, point "
    "kubelet at --container-runtime-endpoint=npipe:////./pipe/containerd-containerd, start kubelet."
)


@check(
    "runtime.version-unsupported",
    severity=Severity.WARNING,
    title="The container runtime version is not supported",
    docs=DOCS,
)
def version_unsupported(snap: NodeSnapshot) -> Outcome:
    runtime = str(snap.node_info().get("containerRuntimeVersion") or "")
    source = f"{snap.node_object.source} status.nodeInfo.containerRuntimeVersion" if snap.node_object else ""
    minor = kubelet_minor(snap)
    name, _, version = runtime.partition("://")
    problems: list[str] = []
    if name == "docker":
        if minor is not None and minor.value >= DOCKERSHIM_REMOVED_MINOR:
            problems.append(
                f"Docker ({version}) with kubelet 1.{minor.value}: dockershim was removed in 1.24, containerd is the "
                "runtime for Windows nodes"
            )
        elif version_lt(version, DOCKER_MIN):
            problems.append(f"Docker {version} is older than the supported 19.03")
    elif name == "containerd":
        if version_lt(version, CONTAINERD_MIN):
            problems.append(f"containerd {version} is older than 1.4.0-beta.2, the first that supports Windows")
        elif minor is not None and minor.value >= CRI_V1_ONLY_MINOR and version_lt(version, CONTAINERD_MIN_FOR_CRI_V1):
            problems.append(
                f"containerd {version} does not serve CRI v1, which kubelet 1.{minor.value} requires (1.6+)"
            )
    hits = snap.hits("runtime.version-unsupported")
    if not problems and not hits:
        return
    yield Fail(
        summary="; ".join(problems) + "." if problems else "kubelet cannot talk to the runtime (CRI v1 missing).",
        evidence=(
            *((Evidence(source, runtime),) if runtime else ()),
            *((Evidence(minor.source, f"1.{minor.value}"),) if minor else ()),
            *hit_evidence(hits),
        ),
        fix=(UPGRADE,),
    )
