"""The node itself: its components, readiness, reserves, HNS health, versions and drift from its peers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import islice
from typing import Any

from diagnostics.checks.common import (
    change_arguments_steps,
    cni_conf,
    component_flags,
    hit_evidence,
    kubelet_minor,
    node_hostname,
    restart_command,
    uses_flannel,
)
from diagnostics.model import Evidence, Fail, FixStep, Severity, Unknown
from diagnostics.probes import HNS_PROBES, PROBES_BY_ID
from diagnostics.registry import check
from diagnostics.snapshot import LogHit, NodeSnapshot
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
    hits = snap.hits("node.components-not-running")
    if snap.services is None and snap.processes is None:
        if hits:
            yield _died_in_log(snap, hits)
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
        if hits:
            yield _died_in_log(snap, hits)
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
    evidence.extend(hit_evidence(hits))
    yield Fail(
        summary=f"{', '.join(c for c, _e in down)} not running on this node: pods get no sandbox, no network or "
        "no Service routing.",
        evidence=tuple(evidence),
        fix=tuple(_start_step(snap, component) for component, _e in down),
    )


_DIED_AS = (
    ("kube-proxy", re.compile(r"kube-?proxy|proxier|winkernel|server_others|\bhns\b.*network specified", re.I)),
    ("flanneld", re.compile(r"flannel|subnet manager|vxlan_windows|hostgw_windows", re.I)),
    ("kubelet", re.compile(r"kubelet|kuberuntime|cni\.go|pod_workers|server\.go:\d+\]", re.I)),
)


def _died_component(hit: LogHit) -> str:
    """Which component a fatal line, panic or exit message is about: the line says, else the log it is in."""
    for component, pattern in _DIED_AS:
        if pattern.search(hit.excerpt):
            return component
    return hit.log_kind if hit.log_kind in LOG_PATHS else ""


def _died_in_log(snap: NodeSnapshot, hits: list[LogHit]) -> Fail:
    components = sorted({c for c in (_died_component(h) for h in hits) if c}) or ["a node component"]
    named = [c for c in components if c in LOG_PATHS]
    return Fail(
        summary=f"{', '.join(components)} stopped: its log shows it exiting (a fatal error, a panic or the "
        "service wrapper reporting the exit). While it is down, pods on this node get no sandbox, no network "
        "or no Service routing.",
        evidence=hit_evidence(hits),
        fix=(
            FixStep(
                "Read why it exited: the line above is its last word; the lines before it give the cause.",
                tuple(f"Get-Content {LOG_PATHS[c]} -Tail 100" for c in named),
            ),
            *(_start_step(snap, c) for c in named),
        ),
    )


def _start_step(snap: NodeSnapshot, component: str) -> FixStep:
    svc = snap.service(component) or snap.service(component.replace("-", ""))
    log = LOG_PATHS.get(component, "")
    tail = (f"Get-Content {log} -Tail 50",) if log else ()
    if svc is not None:
        return FixStep(
            f"Start {component} again once the cause is fixed, and follow its log.",
            (f"Start-Service {svc.name}", *tail),
        )
    pod = _component_pod(snap, component)
    if pod is not None:
        meta = pod.get("metadata") or {}
        return FixStep(
            f"{component} runs as a pod here: delete it so its DaemonSet starts a new one, then read its log.",
            (
                f"kubectl delete pod -n {meta.get('namespace', 'kube-system')} {meta.get('name', '')}",
                f"kubectl logs -n {meta.get('namespace', 'kube-system')} -l {_component_label(component)} --tail 50",
            ),
        )
    return FixStep(
        f"Start {component} again once the cause is fixed (its service, or start.ps1 / the scheduled task that "
        "starts it on this node).",
        (f"Start-Service {component}", *tail),
    )


def _component_pod(snap: NodeSnapshot, component: str) -> dict[str, Any] | None:
    if snap.pods is None:
        return None
    key = "flannel" if component == "flanneld" else component
    return next((p for p in snap.pods.value if key in str((p.get("metadata") or {}).get("name", ""))), None)


def _component_label(component: str) -> str:
    return "app=flannel" if component == "flanneld" else f"k8s-app={component}"


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
    if cond is None and not (snap.node_object.value.get("status") or {}).get("conditions"):
        yield Unknown(needs=("the node's Ready condition (kubectl get nodes or kubectl describe node)",))
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
            FixStep(
                "Read why the API says so: the Ready condition's reason and message, and the node's latest events.",
                (f"kubectl describe node {node_hostname(snap)}",)
                if snap.node != "unknown"
                else ("kubectl get nodes -o wide",),
            ),
            FixStep(
                "On the node, see whether kubelet, kube-proxy and the runtime run, and read kubelet's last words.",
                ("Get-Service kubelet, kube-proxy, containerd", f"Get-Content {LOG_PATHS['kubelet']} -Tail 100"),
            ),
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
        yield from _reserve_from_allocatable(snap)
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
        fix=_reserve_fix(snap),
    )


_RESERVES = "--system-reserved=memory=1536Mi --kube-reserved=memory=512Mi"


def _reserve_fix(snap: NodeSnapshot) -> tuple[FixStep, ...]:
    """Reserve 2 GiB the way this node's kubelet is started: its service (nssm or native), else its flags."""
    svc = snap.service("kubelet")
    line = snap.component_command_line("kubelet")
    if svc is not None and line is not None:
        words = re.sub(r"\s--(?:system|kube)-reserved[= ]\S+", "", " " + line.value).strip()
        match = re.match(r'\s*("[^"]*"|\S+)\s*(.*)$', words)
        program, args = (match.group(1), match.group(2)) if match else (words, "")
        if "nssm" in program.lower():
            match = re.match(r'\s*("[^"]*"|\S+)\s*(.*)$', args)
            program, args = (match.group(1), match.group(2)) if match else (args, "")
        return change_arguments_steps(svc, program, f"{args} {_RESERVES}".strip())
    return (
        FixStep(
            f"Add {_RESERVES} (2 GiB in all) to kubelet's flags where this node starts it (its service, or "
            "systemReserved/kubeReserved in the kubelet config file), then restart kubelet.",
            ("Restart-Service kubelet",),
        ),
    )


def _reserve_from_allocatable(snap: NodeSnapshot) -> Outcome:
    """Without kubelet's flags, the Node's capacity minus allocatable memory is what it reserves (and evicts at)."""
    if snap.node_object is None:
        return
    status = snap.node_object.value.get("status") or {}
    capacity = parse_quantity(str((status.get("capacity") or {}).get("memory") or ""))
    allocatable = parse_quantity(str((status.get("allocatable") or {}).get("memory") or ""))
    if capacity is None or allocatable is None or capacity <= 0:
        return
    reserved = capacity - allocatable
    if reserved >= 2 * GIB:
        return
    yield Fail(
        summary=f"The node keeps {reserved / GIB:.2f} GiB of its {capacity / GIB:.1f} GiB memory out of pods' reach "
        "(capacity minus allocatable); Windows needs at least 2 GiB reserved for the system and Kubernetes, or pods "
        "overcommit the node and it pages.",
        evidence=(
            Evidence(f"{snap.node_object.source} status.capacity.memory", str(status["capacity"]["memory"])),
            Evidence(f"{snap.node_object.source} status.allocatable.memory", str(status["allocatable"]["memory"])),
        ),
        fix=_reserve_fix(snap),
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
        evidence.append(Evidence(snap.services.source, f"hns: {svc.status} (the service is up; its API is not)"))
    yield Fail(
        summary=f"HNS queries ({', '.join(hung)}) got no answer within the agent's budget while the rest of the node "
        "answered: the Host Network Service is hung (a possible HNS deadlock). Pods cannot get or lose network "
        "endpoints until it recovers.",
        evidence=tuple(evidence),
        fix=(
            FixStep("Confirm by hand: the query should return in seconds.", ("Measure-Command { Get-HnsNetwork }",)),
            FixStep(
                "Collect the HNS state and traces before anything restarts it (collectlogs.ps1 of microsoft/SDN).",
                ("C:\\k\\debug\\collectlogs.ps1",),
            ),
            FixStep(
                "Move the pods off the node, then restart the Host Network Service (or reboot the node).",
                (
                    f"kubectl drain {snap.node} --ignore-daemonsets --delete-emptydir-data",
                    "Restart-Service hns",
                    f"kubectl uncordon {snap.node}",
                ),
            ),
        ),
    )


@check(
    "node.version-skew",
    severity=Severity.WARNING,
    title="kubelet or kube-proxy is outside the supported version skew",
    docs="https://kubernetes.io/releases/version-skew-policy/",
    reads={"node", "server"},
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


PEERS_NAMED = 10  # peers quoted in the evidence of a drift


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
    reads={"agent", "node", "peers"},
)
def config_drift(snap: NodeSnapshot) -> Outcome:
    view = snap.cluster_view
    if view is None or len(view.peers) < 2:
        return
    mine = peer_facts(snap)
    for key, value in sorted(mine.items()):
        # Linear in the number of peers for the whole cluster: the counts are shared (ClusterView).
        agreed = view.peers_agree_on(key)
        if agreed is None or agreed[1] < 2 or agreed[0] == value:
            continue
        theirs, count = agreed
        what = _DRIFT_WORDS.get(key, key.replace("_", " "))
        named = [f"{p.node}: {p.facts[key]}" for p in islice((p for p in view.peers if p.facts.get(key)), PEERS_NAMED)]
        more = f" and {count - len(named)} more" if count > len(named) else ""
        yield Fail(
            summary=f"This node's {what} is {value}, but the other {count} Windows nodes all have {theirs}: "
            "this node is the odd one out.",
            evidence=(
                Evidence(f"Node/{snap.node}", f"{what}: {value}"),
                Evidence(view.source or "peers", ", ".join(named) + more),
            ),
            fix=(f"Give this node the same {what} as the others ({theirs}), unless the difference is intended.",),
            subject=key,
        )


# The facts node.config-drift compares, as a person says them.
_DRIFT_WORDS = {
    "pause_image": "pause (sandbox) image",
    "runtime_version": "container runtime version",
    "os_build": "Windows build",
    "cni_type": "CNI plugin",
    "kube_proxy_network": "kube-proxy network name",
    "kube_proxy_mode": "kube-proxy mode",
    "hotfix_level": "Windows update level",
    "kubelet_minor": "kubelet minor version",
    "kubelet_version": "kubelet version",
    "kube_proxy_version": "kube-proxy version",
    "kernel_version": "kernel version",
    "os_image": "OS image",
}
