"""Container images that do not fit the host's Windows build."""

from __future__ import annotations

import re
from collections.abc import Iterator

from diagnostics.checks.common import hit_evidence
from diagnostics.model import Evidence, Fail, FixStep, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot
from diagnostics.versions import WINDOWS_BUILDS, build_name, image_build

DOCS = "https://learn.microsoft.com/virtualization/windowscontainers/deploy-containers/version-compatibility"

Outcome = Iterator[Fail | Unknown]


def _hyperv(pod: dict) -> bool:
    handler = str((pod.get("spec") or {}).get("runtimeClassName") or "").lower()
    return "hyperv" in handler or "hypervisor" in handler


def _host_process(pod: dict, container: dict) -> bool:
    """A HostProcess container runs on the host itself: it is not bound by the host/container version match.

    ``windowsOptions.hostProcess`` is set on the pod's security context (for all its containers)
    or on the container's own.
    """
    pod_options = ((pod.get("spec") or {}).get("securityContext") or {}).get("windowsOptions") or {}
    options = (container.get("securityContext") or {}).get("windowsOptions") or {}
    return bool(options.get("hostProcess", pod_options.get("hostProcess", False)))


@check(
    "image.os-version-mismatch",
    severity=Severity.CRITICAL,
    title="Container images were built for another Windows version",
    docs=DOCS,
)
def os_version_mismatch(snap: NodeSnapshot) -> Outcome:
    host = snap.host_build()
    known = WINDOWS_BUILDS.get(host.value) if host is not None else None
    release = known.release if known is not None else ""
    wanted = f"an image tagged for {release} (this host's release)" if release else "an image built for this host"
    if host is not None and snap.pods is not None:
        for pod in snap.pods.value:
            if _hyperv(pod):
                continue
            meta = pod.get("metadata") or {}
            subject_base = f"Pod/{meta.get('namespace', 'default')}/{meta.get('name', '')}"
            for key in ("initContainers", "containers"):
                for i, c in enumerate((pod.get("spec") or {}).get(key) or []):
                    if _host_process(pod, c):
                        continue
                    image = str(c.get("image") or "")
                    pinned = image_build(image)
                    if pinned is None or pinned == host.value:
                        continue
                    subject = f"{subject_base}:{c.get('name', '')}"
                    yield Fail(
                        summary=f"{subject}: {image} is built for {build_name(pinned)}; with process isolation it "
                        f"cannot run on {build_name(host.value)}.",
                        evidence=(
                            Evidence(f"{snap.pods.source} {subject_base}", f"spec.{key}[{i}].image: {image}"),
                            Evidence(host.source, f"build {host.value}"),
                        ),
                        fix=(
                            f"Use {wanted} or a multi-arch tag, or run it with Hyper-V isolation (a RuntimeClass "
                            "with the runhcs-wcow-hypervisor handler).",
                        ),
                        subject=subject,
                    )
    hits = snap.hits("image.os-version-mismatch")
    if hits:
        pods = sorted({m.group(1) for h in hits for m in _POD_IN_LINE.finditer(h.excerpt)})
        nodes_cmd = "kubectl get nodes -L node.kubernetes.io/windows-build"
        commands = (*(f"kubectl get pods -A --field-selector metadata.name={p} -o wide" for p in pods[:5]), nodes_cmd)
        yield Fail(
            summary="The runtime refused to start a container: 'The container operating system does not match the "
            "host operating system'" + (f" (the host is {build_name(host.value)})." if host else "."),
            evidence=hit_evidence(hits),
            fix=(
                FixStep(
                    (f"Pod {', '.join(pods)}: use" if pods else "For the pod named in the log, use")
                    + f" {wanted} or a multi-arch tag, schedule it on nodes of the build its image was made for "
                    "(node.kubernetes.io/windows-build), or run it with Hyper-V isolation.",
                    commands,
                ),
            ),
            subject="logs",
        )


# A pod named in a kubelet or runtime line: ``for pod "web-1"``, ``pod="ns/web-1"``, ``pod/web-1``, ``web-1_ns(uid)``.
_POD_IN_LINE = re.compile(r'(?:for pod \\?"|pod=\\?"(?:[\w-]+/)?|pod/)([a-z0-9][a-z0-9.-]*[a-z0-9])')
