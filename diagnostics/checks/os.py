"""The host's Windows version against what this Kubernetes version supports."""

from __future__ import annotations

from collections.abc import Iterator

from diagnostics.checks.common import kubelet_minor
from diagnostics.model import Evidence, Fail, FixStep, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot
from diagnostics.versions import WINDOWS_BUILDS, build_name, supported_builds

LATEST_MINOR = 40  # the support table's last row is open-ended: later minors keep it

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
    releases = supporting_releases(build.value)
    steps = []
    if releases:
        steps.append(
            FixStep(
                f"Run a Kubernetes version that supports {build_name(build.value)}: {releases} (kubelet and "
                "kube-proxy on this node, within the version skew of the control plane)."
            )
        )
    else:
        steps.append(
            FixStep(
                f"No Kubernetes release supports {build_name(build.value)} for Windows nodes: move the workloads to a "
                f"Windows Server LTSC host that a current release supports ({_current_hosts()}), with that release."
            )
        )
    if supported:
        ltsc = [b for b in sorted(supported) if b in WINDOWS_BUILDS and WINDOWS_BUILDS[b].ltsc]
        steps.append(
            FixStep(
                f"Or move the workloads to a node running a Windows build that Kubernetes 1.{minor.value} supports: "
                + ", ".join(build_name(b) for b in (ltsc or sorted(supported)))
                + "."
            )
        )
    yield Fail(
        summary=f"Kubernetes 1.{minor.value} supports Windows nodes on {names}; "
        f"this host is {build_name(build.value)}.",
        evidence=(Evidence(build.source, f"build {build.value}"), Evidence(minor.source, f"1.{minor.value}")),
        fix=tuple(steps),
    )


def supporting_releases(build: int) -> str:
    """The Kubernetes minors that support Windows nodes on ``build``, as ranges: "1.14-1.31"."""
    minors = [m for m in range(14, LATEST_MINOR + 1) if build in (supported_builds(m) or ())]
    if not minors:
        return ""
    ranges: list[tuple[int, int]] = []
    for m in minors:
        if ranges and ranges[-1][1] == m - 1:
            ranges[-1] = (ranges[-1][0], m)
        else:
            ranges.append((m, m))
    text = []
    for first, last in ranges:
        if last == LATEST_MINOR:
            text.append(f"1.{first} and later")
        elif first == last:
            text.append(f"1.{first}")
        else:
            text.append(f"1.{first} to 1.{last}")
    return ", ".join(text)


def _current_hosts() -> str:
    builds = supported_builds(LATEST_MINOR) or frozenset()
    return ", ".join(build_name(b) for b in sorted(builds) if b in WINDOWS_BUILDS and WINDOWS_BUILDS[b].ltsc)
