"""The node itself: its components, readiness, reserves, HNS health, versions and drift from its peers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from diagnostics.checks.common import (
    cni_conf,
    component_flags,
    hit_evidence,
    kubelet_minor,
    restart_command,
    uses_flannel,
)
from diagnostics.model import Evidence, Fail, Severity, Unknown
from diagnostics.probes import HNS_PROBES, PROBES_BY_ID
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot
from diagnostics.versions import max_skew, parse_version

DOCS = "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/"
Outcome = Iterator[Fail | Unknown]

LOG_PATHS = {"kubelet": r"C:\k\kubelet.log", "kube-proxy": r"C:\k\kube-proxy.log", "flanneld": r"C:\k\flanneld.log"}


def _components(snap: NodeSnapshot) -> list[str]:
    wanted = ["kubelet", "kube-proxy"]
    if uses_flannel(snap):
        wanted.append("flanneld")
    return wanted


def _running_pod(snap: NodeSnapshot, component: str) -> dict[str, Any] | None:
    """A pod on this node that runs the component (kube-proxy / flannel as HostProcess DaemonSets)."""
    if snap.pods is None:
        return None
    key = "flannel" if component == "flanneld" else component
    for pod in snap.pods.value:
        if (
            key in str((pod.get("metadata") or {}).get("name", ""))
            and (pod.get("status") or {}).get("phase") == "Running"
        ):
            return pod
    return None


def _process(snap: NodeSnapshot, component: str) -> bool:
    if snap.processes is None:
        return False
    names = {component, component.replace("-", "")}
    return any(p.name.lower().removesuffix(".exe") in names for p in snap.processes.value)


@check(
    "node.components-not-running",
    severity=Severity.CRITICAL,
    title="Node components are not running",
    docs=DOCS,
    probes=("services", "processes"),
)
def components_not_running(snap: NodeSnapshot) -> Outcome:
    if snap.services is None and snap.processes is None:
        return
    down: list[tuple[str, Evidence]] = []
    for component in _components(snap):
        svc = snap.service(component) or snap.service(component.replace("-", ""))
        if svc is not None:
            if not svc.running and not _process(snap, component):
                down.append(
                    (
                        component,
                        Evidence(
                            snap.services.source if snap.services else "services",
                            f"{svc.name}: {svc.status or 'unknown status'}",
                        ),
                    )
                )
            continue
        if _process(snap, component) or _running_pod(snap, component) is not None:
            continue
        if component == "kubelet" and (_ready_condition(snap) or {}).get("status") == "True":
            continue  # a Ready node has a kubelet posting its status, wherever it runs from
        if component != "kubelet" and snap.processes is None:
            continue  # may run as a pod or under a start script we cannot see
        down.append((component, Evidence("services and processes", f"no {component} service or process")))
    if not down:
        return
    ready = _ready_condition(snap)
    evidence = [e for _c, e in down]
    if ready is not None and ready.get("status") != "True":
        evidence.append(
            Evidence(
                f"Node/{snap.node} status.conditions[Ready]",
                f"{ready.get('status')} {ready.get('reason', '')}: {ready.get('message', '')}",
            )
        )
    fix = []
    for component, _e in down:
        svc = snap.service(component) or snap.service(component.replace("-", ""))
        log = snap.logs_seen.get(component, LOG_PATHS.get(component, ""))
        if svc is not None:
            fix.append(f"Start-Service {svc.name}; Get-Content {log} -Tail 50")
        else:
            fix.append(f"Start {component} (start.ps1 or its scheduled task); Get-Content {log} -Tail 50")
    yield Fail(
        summary=f"{', '.join(c for c, _e in down)} not running on this node: pods get no sandbox, no network or "
        "no Service routing.",
        evidence=tuple(evidence),
        fix=tuple(fix),
    )


_SERVICE_FIX = {
    "kubelet": 'sc.exe create kubelet binPath= "{exe} --windows-service {args}" start= auto',
    "kube-proxy": 'sc.exe create kube-proxy binPath= "{exe} --windows-service {args}" start= auto',
    "flanneld": "nssm install flanneld {exe}; nssm set flanneld AppParameters {args}; "
    "nssm set flanneld AppEnvironmentExtra NODE_NAME={node}; nssm set flanneld AppDirectory C:\\flannel",
}


@check(
    "node.components-not-services",
    severity=Severity.WARNING,
    title="Node components run as plain processes, not services",
    docs=DOCS,
    probes=("services", "processes"),
)
def components_not_services(snap: NodeSnapshot) -> Outcome:
    if snap.services is None or snap.processes is None:
        return
    for component in _components(snap):
        if snap.service(component) is not None or snap.service(component.replace("-", "")) is not None:
            continue
        proc = next(
            (
                p
                for p in snap.processes.value
                if p.name.lower().removesuffix(".exe") in (component, component.replace("-", ""))
            ),
            None,
        )
        if proc is None:
            continue
        line = proc.command_line or proc.name
        match = re.match(r'\s*("[^"]+"|\S+)\s*(.*)', line)
        exe, args = (match.group(1).strip('"'), match.group(2)) if match else (proc.name, "")
        yield Fail(
            summary=f"{component} runs as a plain process (pid {proc.pid}), not a Windows service: nothing restarts "
            "it after a crash or a reboot.",
            evidence=(Evidence(snap.processes.source, line),),
            fix=(
                _SERVICE_FIX[component].format(
                    exe=exe, args=args.replace("--windows-service", "").strip(), node=snap.node
                ),
                f"Start-Service {component}",
            ),
            subject=component,
        )


@check(
    "node.proxy-env-missing",
    severity=Severity.WARNING,
    title="Downloads time out and no machine-wide proxy is set",
    docs=DOCS,
)
def proxy_env_missing(snap: NodeSnapshot) -> Outcome:
    hits = snap.hits("node.proxy-env-missing")
    if not hits:
        return
    if snap.machine_env is None:
        yield Unknown(needs=("the machine-level environment variables (HTTP_PROXY/HTTPS_PROXY)",))
        return
    names = {k.upper() for k in snap.machine_env.value}
    if {"HTTP_PROXY", "HTTPS_PROXY"} & names:
        return
    yield Fail(
        summary="Image pulls or downloads time out and the machine has no HTTP_PROXY/HTTPS_PROXY: a node behind a "
        "firewall needs them for containerd, kubelet and the start scripts.",
        evidence=(*hit_evidence(hits), Evidence(snap.machine_env.source, "no HTTP_PROXY or HTTPS_PROXY")),
        fix=(
            '[Environment]::SetEnvironmentVariable("HTTP_PROXY", "http://<proxy>:<port>/", '
            "[EnvironmentVariableTarget]::Machine)",
            '[Environment]::SetEnvironmentVariable("HTTPS_PROXY", "http://<proxy>:<port>/", '
            "[EnvironmentVariableTarget]::Machine)",
            '[Environment]::SetEnvironmentVariable("NO_PROXY", "localhost,127.0.0.1,<cluster CIDR>,<service CIDR>,'
            '<node subnet>", [EnvironmentVariableTarget]::Machine)',
            restart_command(snap, "containerd") + "; " + restart_command(snap, "kubelet"),
        ),
    )


def _ready_condition(snap: NodeSnapshot) -> dict[str, Any] | None:
    if snap.node_object is None:
        return None
    for cond in (snap.node_object.value.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond
    return None


@check("node.not-ready", severity=Severity.CRITICAL, title="The node is not Ready", docs=DOCS)
def not_ready(snap: NodeSnapshot) -> Outcome:
    if snap.node_object is None:
        return
    cond = _ready_condition(snap)
    if cond is not None and cond.get("status") == "True":
        return
    text = (
        "no Ready condition"
        if cond is None
        else (
            f"Ready={cond.get('status')} reason={cond.get('reason', '')} since {cond.get('lastTransitionTime', '?')}: "
            f"{cond.get('message', '')}"
        )
    )
    yield Fail(
        summary=f"The node is not Ready ({text.split(':')[0]}): no new pods are scheduled here.",
        evidence=(Evidence(f"{snap.node_object.source} status.conditions[Ready]", text),),
        fix=(
            f"Reason from the API: {(cond or {}).get('reason', 'none')} - {(cond or {}).get('message', '')}",
            "Read the kubelet log: Get-Content " + snap.logs_seen.get("kubelet", LOG_PATHS["kubelet"]) + " -Tail 100",
            "Check kubelet, kube-proxy and the runtime: Get-Service kubelet, kube-proxy, containerd",
        ),
    )


_QUANTITY_RE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTE]i?|[kmgte]|)$")
_UNITS = {
    "": 1,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Ei": 2**60,
    "m": 1e-3,
}
GIB = 2**30


def parse_quantity(text: str) -> float | None:
    """A Kubernetes quantity in bytes (``2Gi``, ``512Mi``, ``1500M``); None when unreadable."""
    match = _QUANTITY_RE.match(text.strip())
    if not match:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def _memory_of(flag_value: str) -> float | None:
    for part in flag_value.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "memory":
            return parse_quantity(value)
    return None


@check(
    "node.memory-reserve-low",
    severity=Severity.WARNING,
    title="Less than 2 GiB of memory is reserved for the system",
    docs="https://kubernetes.io/docs/concepts/configuration/windows-resource-management/",
)
def memory_reserve_low(snap: NodeSnapshot) -> Outcome:
    flags = component_flags(snap, "kubelet")
    if flags is None:
        return
    values = flags.value
    system, kube = values.get("system-reserved", ""), values.get("kube-reserved", "")
    if not system and not kube and values.get("config"):
        return  # reserves may live in the kubelet config file, which is not collected
    total = (_memory_of(system) or 0) + (_memory_of(kube) or 0)
    if total >= 2 * GIB:
        return
    shown = f"--system-reserved={system or '(unset)'} --kube-reserved={kube or '(unset)'}"
    yield Fail(
        summary=f"kubelet reserves {total / GIB:.2f} GiB of memory for the system and Kubernetes; Windows needs at "
        "least 2 GiB, or pods overcommit the node and it pages.",
        evidence=(Evidence(flags.source, shown),),
        fix=(
            "Add --system-reserved=memory=1536Mi --kube-reserved=memory=512Mi (2 GiB in all) to kubelet's flags "
            "and restart kubelet.",
        ),
    )


_HNS_CRASH_RE = re.compile(
    r"host network service.*(terminated unexpectedly|stopped unexpectedly|crash)|hns.*(crash|fail(ed)? to start|"
    r"restart)|7031|7034",
    re.IGNORECASE,
)


@check(
    "node.hns-crash",
    severity=Severity.CRITICAL,
    title="The Host Network Service crashed or restarted",
    docs=DOCS,
    probes=("hns.events", "services"),
)
def hns_crash(snap: NodeSnapshot) -> Outcome:
    evidence: list[Evidence] = []
    svc = snap.service("hns")
    if svc is not None and not svc.running and snap.services is not None:
        evidence.append(Evidence(snap.services.source, f"hns: {svc.status}"))
    if snap.hns_events is not None:
        for event in snap.hns_events.value:
            text = f"{event.id} {event.message}"
            if event.level.lower() in ("error", "critical") or _HNS_CRASH_RE.search(text):
                evidence.append(
                    Evidence(
                        snap.hns_events.source, f"{event.time} {event.level} {event.id}: {event.message.strip()[:300]}"
                    )
                )
    hits = snap.hits("node.hns-crash")
    evidence.extend(hit_evidence(hits))
    if not evidence:
        return
    yield Fail(
        summary="The Host Network Service restarted, crashed or is not running: endpoints and load balancers are "
        "lost or half-applied until kubelet, kube-proxy and the CNI recreate them.",
        evidence=tuple(evidence[:8]),
        fix=(
            "Start-Service hns (if stopped), then restart kube-proxy and, with Flannel, flanneld.",
            "Read the events: Get-WinEvent -LogName Microsoft-Windows-Host-Network-Service-Admin -MaxEvents 50",
            "Collect logs for a support case: C:\\k\\debug\\collectlogs.ps1 (microsoft/SDN), and install the latest "
            "cumulative update.",
        ),
    )


@check(
    "node.hns-unresponsive",
    severity=Severity.CRITICAL,
    title="The Host Network Service does not answer",
    docs=DOCS,
)
def hns_unresponsive(snap: NodeSnapshot) -> Outcome:
    hung = [p for p in HNS_PROBES if p in snap.unanswered]
    if not hung:
        return
    answered = [p for p in PROBES_BY_ID if p not in snap.unanswered and p not in HNS_PROBES]
    if snap.incomplete and not any(p not in snap.incomplete for p in answered):
        return  # nothing answered: the agent or the node as a whole is stuck, not HNS alone
    evidence = [Evidence("agent", snap.incomplete.get(p, f"{p} timed out")) for p in hung]
    svc = snap.service("hns")
    if svc is not None and snap.services is not None:
        evidence.append(Evidence(snap.services.source, f"hns: {svc.status} (the service runs, its API does not answer)"))
    yield Fail(
        summary=f"HNS queries ({', '.join(hung)}) got no answer within the agent's budget while the rest of the node "
        "answered: the Host Network Service is hung (a possible HNS deadlock). Pods cannot get or lose network "
        "endpoints until it recovers.",
        evidence=tuple(evidence),
        fix=(
            "Confirm by hand: Measure-Command { Get-HnsNetwork } (or hnsdiag list networks); it should return in "
            "seconds.",
            "Collect HNS state and traces before any restart: C:\\k\\debug\\collectlogs.ps1 (microsoft/SDN).",
            f"Then drain and recover the node: kubectl drain {snap.node} --ignore-daemonsets; Restart-Service hns "
            "(or reboot the node); kubectl uncordon " + snap.node,
        ),
    )


@check(
    "node.version-skew",
    severity=Severity.WARNING,
    title="kubelet or kube-proxy is outside the supported version skew",
    docs="https://kubernetes.io/releases/version-skew-policy/",
)
def version_skew(snap: NodeSnapshot) -> Outcome:
    view = snap.cluster_view
    server = parse_version(view.server_version) if view is not None else None
    if server is None or view is None:
        return
    info = snap.node_info()
    limit = max_skew(server[1])
    for key, component in (("kubeletVersion", "kubelet"), ("kubeProxyVersion", "kube-proxy")):
        version = parse_version(str(info.get(key) or ""))
        if version is None or version[0] != server[0]:
            continue
        behind = server[1] - version[1]
        if 0 <= behind <= limit:
            continue
        state = "newer than" if behind < 0 else f"{behind} minor versions behind"
        yield Fail(
            summary=f"{component} {info[key]} is {state} the API server {view.server_version} (supported: the same "
            f"minor or up to {limit} older).",
            evidence=(
                Evidence(f"Node/{snap.node} status.nodeInfo.{key}", str(info[key])),
                Evidence(f"{view.source} version", view.server_version),
            ),
            fix=(
                f"Install {component} v1.{server[1]}.x on this node (or within {limit} minors of the API server) "
                f"and restart it.",
            ),
            subject=component,
        )


def peer_facts(snap: NodeSnapshot) -> dict[str, str]:
    """The facts ``node.config-drift`` compares across Windows nodes; build ``PeerSummary.facts`` with it."""
    from diagnostics.checks.pause import sandbox_image

    facts: dict[str, str] = {}
    image = sandbox_image(snap)
    if image is not None:
        facts["pause_image"] = image.value
    runtime = snap.node_info().get("containerRuntimeVersion")
    if runtime:
        facts["runtime_version"] = str(runtime)
    build = snap.host_build()
    if build is not None:
        facts["os_build"] = str(build.value)
    _f, cni = cni_conf(snap)
    if cni is not None:
        facts["cni_type"] = "/".join(t for t in (cni.type, cni.delegate_type) if t)
    flags = component_flags(snap, "kube-proxy")
    if flags is not None:
        facts["kube_proxy_network"] = flags.value.get("network-name", "")
        facts["kube_proxy_mode"] = flags.value.get("proxy-mode", "")
    if snap.os is not None and snap.os.value.ubr is not None:
        facts["hotfix_level"] = snap.os.value.version
    minor = kubelet_minor(snap)
    if minor is not None:
        facts["kubelet_minor"] = str(minor.value)
    return {k: v for k, v in facts.items() if v}


@check(
    "node.config-drift",
    severity=Severity.INFO,
    title="This node differs from its Windows peers",
    docs=DOCS,
)
def config_drift(snap: NodeSnapshot) -> Outcome:
    view = snap.cluster_view
    if view is None or len(view.peers) < 2:
        return
    mine = peer_facts(snap)
    for key, value in sorted(mine.items()):
        theirs = [p.facts.get(key) for p in view.peers if p.facts.get(key)]
        if len(theirs) < 2 or len(set(theirs)) != 1 or theirs[0] == value:
            continue
        yield Fail(
            summary=f"{key} is {value} here but {theirs[0]} on the other {len(theirs)} Windows nodes: this node is "
            "the odd one out.",
            evidence=(
                Evidence(f"Node/{snap.node}", f"{key}={value}"),
                Evidence(view.source or "peers", ", ".join(f"{p.node}: {p.facts.get(key)}" for p in view.peers)),
            ),
            fix=(f"Align {key} with the other nodes ({theirs[0]}) unless the difference is intended.",),
            subject=key,
        )
