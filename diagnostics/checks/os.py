"""The host's Windows version against what this Kubernetes version supports."""

from __future__ import annotations

from collections.abc import Iterator

from diagnostics.checks.common import kubelet_minor
from diagnostics.model import Evidence, Fail, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot
from diagnostics.versions import build_name, supported_builds

DOCS = "https://kubernetes.io/docs/concepts/windows/intro/#windows-os-version-support"

Outcome = Iterator[Fail | Unknown]


@check(
    "os.version-unsupported",
    severity=Severity.WARNING,
    title="This Windows version is not supported by the node's Kubernetes version",
    docs=DOCS,
)
def version_unsupported(snap: NodeSnapshot) -> Outcome:
    build = snap.host_build()
    minor = kubelet_minor(snap)
    if build is None or minor is None:
        return
    supported = supported_builds(minor.value)
    if supported is not None and build.value in supported:
        return
    names = ", ".join(build_name(b) for b in sorted(supported)) if supported else "none (Windows nodes start at 1.14)"
    yield Fail(
        summary=f"Kubernetes 1.{minor.value} supports Windows nodes on {names}; "
        f"this host is {build_name(build.value)}.",
        evidence=(Evidence(build.source, f"build {build.value}"), Evidence(minor.source, f"1.{minor.value}")),
        fix=(
            "Move the workloads to a node running Windows Server 2022 or 2025 (LTSC), or run a Kubernetes version "
            "that supports this build.",
        ),
    )
