"""Service features with Windows limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from diagnostics.model import Evidence, Fail, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot
from diagnostics.versions import SESSION_AFFINITY_MIN_BUILD

DOCS = "https://kubernetes.io/docs/concepts/services-networking/windows-networking/#limitations"
DEFAULT_TIMEOUT = 10800  # the API's default for sessionAffinityConfig.clientIP.timeoutSeconds

Outcome = Iterator[Fail | Unknown]


def _labels_by_namespace(pods: tuple[dict[str, Any], ...]) -> dict[str, list[dict[str, Any]]]:
    """The node's pods' labels, by namespace: a cluster's many Services are each matched against few pods."""
    out: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        out.setdefault(meta.get("namespace", "default"), []).append(meta.get("labels") or {})
    return out


def _selects_local_pod(svc: dict[str, Any], local: dict[str, list[dict[str, Any]]]) -> bool:
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        return False
    namespace = (svc.get("metadata") or {}).get("namespace", "default")
    return any(all(labels.get(k) == v for k, v in selector.items()) for labels in local.get(namespace, ()))


@check(
    "service.session-affinity-timeout",
    severity=Severity.INFO,
    title="Session affinity settings Windows does not honour",
    docs=DOCS,
)
def session_affinity_timeout(snap: NodeSnapshot) -> Outcome:
    view = snap.cluster_view
    if view is None or snap.pods is None:
        return
    build = snap.host_build()
    local = _labels_by_namespace(snap.pods.value)
    for svc in view.client_ip_services():
        spec = svc.get("spec") or {}
        if not _selects_local_pod(svc, local):
            continue
        meta = svc.get("metadata") or {}
        subject = f"Service/{meta.get('namespace', 'default')}/{meta.get('name', '')}"
        timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
        if build is not None and build.value < SESSION_AFFINITY_MIN_BUILD:
            yield Fail(
                summary=f"{subject} uses sessionAffinity: ClientIP, which Windows supports from build "
                f"{SESSION_AFFINITY_MIN_BUILD}; this host is build {build.value}.",
                evidence=(
                    Evidence(f"{view.source} {subject}", "spec.sessionAffinity: ClientIP"),
                    Evidence(build.source, f"build {build.value}"),
                ),
                fix=(
                    f"Run the pods behind {subject} on Windows Server 2022 or later nodes (for example with "
                    "nodeSelector node.kubernetes.io/windows-build: '10.0.20348'), or remove "
                    f"sessionAffinity: ClientIP from {subject}.",
                ),
                subject=subject,
            )
        elif isinstance(timeout, int) and timeout != DEFAULT_TIMEOUT:
            yield Fail(
                summary=f"{subject} sets a session affinity timeout of {timeout}s; Windows ignores "
                "timeoutSeconds (the maximum sticky time is not configurable there).",
                evidence=(
                    Evidence(
                        f"{view.source} {subject}", f"spec.sessionAffinityConfig.clientIP.timeoutSeconds: {timeout}"
                    ),
                ),
                fix=(
                    f"Remove spec.sessionAffinityConfig.clientIP.timeoutSeconds from {subject}, or stop "
                    f"depending on clients leaving a Windows backend after {timeout}s: Windows ignores it.",
                ),
                subject=subject,
            )
