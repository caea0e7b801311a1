"""The pause (infrastructure) image: OS build compatibility and wincat for port-forward."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from diagnostics.checks.common import (
    component_flags,
    hit_evidence,
    node_hostname,
    parsed_file,
    ps_quote,
    restart_command,
)
from diagnostics.model import Evidence, Fail, FixStep, Severity, Unknown
from diagnostics.parsers.flannel import parse_containerd_sandbox_image
from diagnostics.registry import check
from diagnostics.snapshot import Fact, NodeSnapshot
from diagnostics.versions import PAUSE_WINCAT_MIN, RECOMMENDED_PAUSE, build_name, image_build, version_lt

DOCS = "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/"
CONTAINERD_CONFIG = r"C:\Program Files\containerd\config.toml"

Outcome = Iterator[Fail | Unknown]

_NETWORK_CAUSE = re.compile(r"network|cni|plugin type|subnet\.env|hns|ip address", re.IGNORECASE)


def sandbox_image(snap: NodeSnapshot) -> Fact[str] | None:
    """The pause image this node uses: containerd's ``sandbox_image`` (what CRI really runs), else kubelet's
    ``--pod-infra-container-image``."""
    fact, image = parsed_file(snap, "containerd-config.toml", parse_containerd_sandbox_image)
    if fact is not None and image:
        return Fact(image, f"{fact.source} sandbox_image")
    flags = component_flags(snap, "kubelet")
    if flags is not None and flags.value.get("pod-infra-container-image"):
        return Fact(flags.value["pod-infra-container-image"], f"{flags.source} --pod-infra-container-image")
    return None


def sandbox_events(snap: NodeSnapshot) -> list[dict[str, Any]]:
    """FailedCreatePodSandBox events whose cause is not the pod network (those belong to network checks)."""
    if snap.events is None:
        return []
    return [
        e
        for e in snap.events.value
        if e.get("reason") == "FailedCreatePodSandBox" and not _NETWORK_CAUSE.search(str(e.get("message", "")))
    ]


def stuck_pods(snap: NodeSnapshot) -> list[tuple[str, str]]:
    """(namespace/name, why) of pods stuck in ContainerCreating or restarting over and over."""
    out: list[tuple[str, str]] = []
    if snap.pods is None:
        return out
    for pod in snap.pods.value:
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "ContainerCreating":
                out.append((key, "ContainerCreating"))
                break
            if int(status.get("restartCount") or 0) >= 5 and waiting.get("reason") == "CrashLoopBackOff":
                out.append((key, f"CrashLoopBackOff after {status.get('restartCount')} restarts"))
                break
    return out


def _event_evidence(snap: NodeSnapshot, events: list[dict[str, Any]]) -> list[Evidence]:
    source = snap.events.source if snap.events is not None else "events"
    out = []
    for e in events[:3]:
        obj = e.get("involvedObject") or {}
        meta = e.get("metadata") or {}
        # Events are namespaced: the name alone does not find the object (``kubectl get event -n``).
        name = f"{meta['namespace']}/{meta.get('name', '')}" if meta.get("namespace") else meta.get("name", "")
        out.append(
            Evidence(
                f"{source} Event/{name}",
                f"{obj.get('kind', 'Pod')}/{obj.get('namespace', '')}/{obj.get('name', '')}: {e.get('reason')}: "
                f"{e.get('message', '')}",
            )
        )
    return out


def _runtime(snap: NodeSnapshot) -> str:
    """``containerd`` or ``docker``: who creates this node's sandboxes (containerd unless Docker is seen)."""
    runtime = str(snap.node_info().get("containerRuntimeVersion") or "")
    if runtime.startswith("docker://"):
        return "docker"
    if any(
        "error response from daemon" in h.excerpt.lower() or '"owner":"docker"' in h.excerpt.lower()
        for h in snap.log_hits
    ):
        return "docker"  # dockerd's own words in the sandbox error
    if (
        snap.service("docker") is not None
        and snap.service("containerd") is None
        and snap.file("containerd-config.toml") is None
    ):
        return "docker"
    return "containerd"


def _use_pause_fix(snap: NodeSnapshot) -> tuple[FixStep, ...]:
    steps: list[FixStep] = []
    if _runtime(snap) == "containerd":
        # With containerd the sandbox image is containerd's setting: kubelet's flag is ignored (and gone in 1.27).
        fact = snap.file("containerd-config.toml")
        path = (
            fact.path
            if fact is not None and fact.path.lower().endswith(".toml") and ":" in fact.path
            else CONTAINERD_CONFIG
        )
        steps.append(
            FixStep(
                f'Set sandbox_image = "{RECOMMENDED_PAUSE}" (multi-arch: it matches every Windows host) under '
                f'[plugins."io.containerd.grpc.v1.cri"] in {path}, pull it and restart containerd.',
                (
                    f"notepad {ps_quote(path)}",
                    f"crictl pull {RECOMMENDED_PAUSE}",
                    restart_command(snap, "containerd"),
                ),
            )
        )
    else:
        steps.append(
            FixStep(
                f"With Docker the pause image is kubelet's --pod-infra-container-image: set it to a pause image "
                f"built for this host (or the multi-arch {RECOMMENDED_PAUSE}) and restart kubelet.",
                (f"docker pull {RECOMMENDED_PAUSE}", restart_command(snap, "kubelet")),
            )
        )
    stuck = [key.split("/", 1) for key, _why in stuck_pods(snap)]
    if stuck:
        commands = tuple(f"kubectl delete pod -n {ns} {name}" for ns, name in stuck[:10])
        steps.append(
            FixStep("Delete the stuck pods so that their sandboxes are created again with the new image.", commands)
        )
    else:
        where = (
            f"kubectl get pods -A -o wide --field-selector spec.nodeName={node_hostname(snap)}"
            if snap.node != "unknown"
            else "kubectl get pods -A -o wide | Select-String ContainerCreating"
        )
        steps.append(
            FixStep(
                "Find the pods stuck in ContainerCreating on this node and delete them so that their sandboxes "
                "are created again with the new image.",
                (where,),
            )
        )
    return tuple(steps)


@check(
    "pause.image-incompatible",
    severity=Severity.CRITICAL,
    title="The pause image does not match the host",
    docs=DOCS,
)
def image_incompatible(snap: NodeSnapshot) -> Outcome:
    hits = snap.hits("pause.image-incompatible")
    host = snap.host_build()
    image = sandbox_image(snap)
    events = sandbox_events(snap)
    evidence: list[Evidence] = []
    reasons: list[str] = []
    pinned = image_build(image.value) if image is not None else None
    if host is not None and image is not None and pinned is not None and pinned != host.value:
        reasons.append(
            f"the pause image {image.value} is built for {build_name(pinned)} but the host is {build_name(host.value)}"
        )
        evidence.append(Evidence(image.source, image.value))
        evidence.append(Evidence(host.source, f"build {host.value}"))
    if hits:
        reasons.append("kubelet fails to create pod sandboxes")
        evidence.extend(hit_evidence(hits))
    if events:
        reasons.append(f"{len(events)} FailedCreatePodSandBox event(s)")
        evidence.extend(_event_evidence(snap, events))
    if not reasons:
        if image is None and "kubelet" not in snap.logs_seen and snap.events is None:
            yield Unknown(needs=("kubelet's --pod-infra-container-image or containerd's sandbox_image", "kubelet log"))
        return
    stuck = stuck_pods(snap)
    if stuck and snap.pods is not None:
        evidence.extend(Evidence(f"{snap.pods.source} Pod/{key}", why) for key, why in stuck[:3])
    yield Fail(
        summary="Pods cannot start on this node: " + "; ".join(reasons) + ".",
        evidence=tuple(evidence),
        fix=_use_pause_fix(snap),
    )


def _wincat_too_old(ref: str) -> bool:
    repo, _, tag = ref.rpartition(":")
    if "/" in tag or not repo:
        return False
    minimum = PAUSE_WINCAT_MIN.get(repo.lower())
    return minimum is not None and version_lt(tag, minimum) is True


@check(
    "pause.wincat-missing",
    severity=Severity.WARNING,
    title="kubectl port-forward fails: the pause image has no wincat",
    docs=DOCS,
)
def wincat_missing(snap: NodeSnapshot) -> Outcome:
    hits = snap.hits("pause.wincat-missing")
    image = sandbox_image(snap)
    old = image is not None and _wincat_too_old(image.value)
    if not hits and not old:
        return
    evidence = list(hit_evidence(hits))
    if image is not None:
        evidence.append(Evidence(image.source, image.value))
    yield Fail(
        summary="kubectl port-forward to pods on this node needs wincat.exe in the pause image"
        + (f"; {image.value} predates it." if old and image is not None else "."),
        evidence=tuple(evidence),
        fix=(
            _use_pause_fix(snap)[0],
            FixStep("registry.k8s.io/pause:3.6+ and mcr.microsoft.com/oss/kubernetes/pause:3.6+ include wincat."),
        ),
    )
