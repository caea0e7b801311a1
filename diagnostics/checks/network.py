"""Windows networking limitations and platform requirements: NodePort and Service VIPs from the
node, ICMP to the outside, MAC spoofing on VMs, overlay hotfixes, DSR and dual-stack."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from diagnostics.checks.common import component_flags, in_network, management_subnet, net_conf, uses_overlay
from diagnostics.facts import ConnectivityResult
from diagnostics.model import Evidence, Fail, Severity, Unknown
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot
from diagnostics.versions import (
    DSR_MIN_BUILD,
    DUALSTACK_MIN_BUILD,
    OVERLAY_HOTFIX_MIN_UBR,
    OVERLAY_HOTFIXES,
    WS2019,
    build_name,
)

DOCS = "https://kubernetes.io/docs/concepts/services-networking/windows-networking/#limitations"
FAQ = "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/"

Outcome = Iterator[Fail | Unknown]


def _tests(snap: NodeSnapshot, kind: str) -> list[ConnectivityResult]:
    return [r for r in snap.connectivity if r.kind == kind]


def _evidence(r: ConnectivityResult) -> Evidence:
    where = r.origin + (f" {r.detail['pod']}" if r.detail.get("pod") else "")
    result = "ok" if r.ok else "failed"
    return Evidence(
        f"connectivity {r.kind} from {where}",
        f"{r.target}: {result}" + (f" ({r.output.strip()[:200]})" if r.output.strip() else ""),
    )


@check(
    "network.nodeport-local", severity=Severity.INFO, title="NodePort does not answer from the node itself", docs=FAQ
)
def nodeport_local(snap: NodeSnapshot) -> Outcome:
    tests = _tests(snap, "nodeport")
    for local in (r for r in tests if r.origin == "node" and not r.ok):
        elsewhere = [r for r in tests if _port(r.target) == _port(local.target) and r.origin != "node" and r.ok]
        if not any(r.origin != "node" for r in tests if _port(r.target) == _port(local.target)):
            yield Unknown(
                needs=(f"the same NodePort ({local.target}) tested from another node or from outside the cluster",),
                subject=local.target,
            )
            continue
        if elsewhere:
            yield Fail(
                summary=f"NodePort {local.target} fails from this node but answers from {elsewhere[0].origin}: "
                "a known Windows limitation (local NodePort access is not supported); the Service works.",
                evidence=(_evidence(local), _evidence(elsewhere[0])),
                fix=("Nothing to fix: test NodePorts from another node or from outside the cluster.",),
                subject=local.target,
            )


@check(
    "network.service-vip-from-node",
    severity=Severity.INFO,
    title="The node cannot reach Service ClusterIPs",
    docs=FAQ,
)
def service_vip_from_node(snap: NodeSnapshot) -> Outcome:
    tests = _tests(snap, "service-vip")
    for local in (r for r in tests if r.origin == "node" and not r.ok):
        from_pod = [r for r in tests if r.target == local.target and r.origin == "pod"]
        if from_pod and not any(r.ok for r in from_pod):
            continue  # pods fail too: not this limitation
        if not from_pod and local.detail.get("from") == "text":
            yield Unknown(
                needs=(f"the same Service ({local.target}) tested from a pod on this node (kubectl exec ... curl)",),
                subject=local.target,
            )
            continue
        yield Fail(
            summary=f"This node cannot reach the Service VIP {local.target}"
            + (" while its pods can" if from_pod else "")
            + ": a known limitation of the Windows host network stack.",
            evidence=(_evidence(local), *(_evidence(r) for r in from_pod[:1])),
            fix=(
                "Nothing to fix on the node: test Services from a pod (kubectl exec ... -- curl <ClusterIP>:<port>).",
            ),
            subject=local.target,
        )


def _port(target: str) -> str:
    """The port of ``host:port`` (a NodePort is the same Service on any node address)."""
    return target.rsplit(":", 1)[-1] if ":" in target else target


def _in_cluster(snap: NodeSnapshot, target: str) -> bool | None:
    """Whether a target address is inside the cluster (pods, Services, the node network); None if unknown."""
    host = target.split("://")[-1].split("/")[0].split(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    cidrs = []
    view = snap.cluster_view
    if view is not None:
        cidrs += [view.cluster_cidr, view.service_cidr]
    _f, conf = net_conf(snap)
    if conf is not None:
        cidrs.append(conf.network)
    mgmt = management_subnet(snap)
    if mgmt is not None:
        cidrs.append(mgmt.value)
    cidrs = [c for c in cidrs if c]
    if not cidrs:
        return None
    return any(in_network(host, c) for c in cidrs)


def curl_command(r: ConnectivityResult) -> str:
    """The curl that replaces a failing ping: from the same pod when known."""
    host = r.target.split("://")[-1].split("/")[0]
    curl = f"curl.exe -sS -m 5 -o NUL -w '%{{http_code}}' http://{host}/"
    pod = r.detail.get("pod", "")
    if pod:
        namespace, _, name = pod.rpartition("/")
        return f"kubectl exec -n {namespace or 'default'} {name} -- {curl}"
    return curl


def _outside(snap: NodeSnapshot, target: str) -> bool | None:
    """Whether a target is outside the cluster: by the cluster's CIDRs when known, else by the address itself
    (a public IP, or a DNS name that is not a cluster name)."""
    inside = _in_cluster(snap, target)
    if inside is not None:
        return not inside
    host = target.split("://")[-1].split("/")[0].split(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if "." in host and not host.endswith((".local", ".svc", ".internal", ".cluster")) and "svc." not in host:
            return True
        return None
    return address.is_global


@check("network.icmp-external", severity=Severity.INFO, title="Ping from pods to outside the cluster fails", docs=DOCS)
def icmp_external(snap: NodeSnapshot) -> Outcome:
    pings = [r for r in _tests(snap, "ping") if r.origin == "pod"]
    for r in pings:
        if r.ok or not _outside(snap, r.target):
            continue
        inside_ok = [p for p in pings if p.ok and _outside(snap, p.target) is False]
        curl_ok = [
            c for c in snap.connectivity if c.kind == "curl" and c.origin == "pod" and c.ok and _outside(snap, c.target)
        ]
        if not inside_ok and not curl_ok:
            # One half only: a failing ping alone is also what a pod with no network at all shows.
            yield Unknown(
                needs=(
                    f"a curl or Test-NetConnection -Port from the same pod to {r.target} (or an in-cluster ping that "
                    "works), to tell the ICMP limitation from a pod with no network",
                ),
                subject=r.target,
            )
            continue
        yield Fail(
            summary=f"ping {r.target} from a Windows pod fails: ICMP to destinations outside the cluster is not "
            "translated (a known limitation); TCP and UDP work." + (" In-cluster ping works." if inside_ok else ""),
            evidence=(_evidence(r), *(_evidence(x) for x in (inside_ok[:1] + curl_ok[:1]))),
            fix=(f"Test with TCP instead of ping: {curl_command(r)}",),
            subject=r.target,
        )


@check(
    "network.mac-spoofing",
    severity=Severity.WARNING,
    title="Pods on this VM have no network: MAC address spoofing is probably off",
    docs=FAQ,
)
def mac_spoofing(snap: NodeSnapshot) -> Outcome:
    if snap.computer is None or not snap.computer.value.is_vm:
        return
    from_pods = [r for r in snap.connectivity if r.origin == "pod" and r.kind in ("ping", "curl", "dns")]
    from_node = [r for r in snap.connectivity if r.origin == "node" and r.ok]
    if not from_pods or any(r.ok for r in from_pods):
        return
    model = f"{snap.computer.value.manufacturer} {snap.computer.value.model}".strip()
    yield Fail(
        summary=f"This node is a virtual machine ({model}) and every connectivity test from its pods fails"
        + (" while the node itself is reachable" if from_node else "")
        + ": the hypervisor drops frames from the containers' MAC addresses.",
        evidence=(Evidence(snap.computer.source, model), *(_evidence(r) for r in from_pods[:3])),
        fix=(
            f"Hyper-V: on the host, Get-VMNetworkAdapter -VMName {snap.node} | Set-VMNetworkAdapter "
            "-MacAddressSpoofing On",
            "VMware: set 'MAC address changes' and 'Forged transmits' to Accept on the port group of this VM.",
        ),
    )


@check(
    "network.overlay-hotfix-missing",
    severity=Severity.WARNING,
    title="Overlay networking on Windows Server 2019 lacks its hotfix",
    docs=DOCS,
)
def overlay_hotfix_missing(snap: NodeSnapshot) -> Outcome:
    if snap.os is None or snap.os.value.build != WS2019 or not uses_overlay(snap):
        return
    ubr = snap.os.value.ubr
    if ubr is not None and ubr >= OVERLAY_HOTFIX_MIN_UBR:
        return
    installed = {h.id.upper() for h in snap.hotfixes.value} if snap.hotfixes is not None else set()
    if installed & set(OVERLAY_HOTFIXES):
        return
    if ubr is None and snap.hotfixes is None:
        yield Unknown(needs=("the OS update revision (UBR) or Get-HotFix",))
        return
    yield Fail(
        summary=f"Overlay (VXLAN) networking on Windows Server 2019 needs {' / '.join(OVERLAY_HOTFIXES)}; this host is "
        f"{snap.os.value.version} and has neither.",
        evidence=(
            Evidence(snap.os.source, snap.os.value.version),
            *(
                (Evidence(snap.hotfixes.source, ", ".join(sorted(installed)) or "no hotfixes"),)
                if snap.hotfixes
                else ()
            ),
        ),
        fix=("Install the latest cumulative update for Windows Server 2019 (it includes KB4489899), then reboot.",),
    )


@check(
    "network.dsr-unsupported",
    severity=Severity.WARNING,
    title="kube-proxy enables DSR on a build that lacks it",
    docs=DOCS,
)
def dsr_unsupported(snap: NodeSnapshot) -> Outcome:
    flags = component_flags(snap, "kube-proxy")
    build = snap.host_build()
    if flags is None or build is None or build.value >= DSR_MIN_BUILD:
        return
    enabled = flags.value.get("enable-dsr", "false").lower() == "true" or "WinDSR=true" in flags.value.get(
        "feature-gates", ""
    )
    if not enabled:
        return
    yield Fail(
        summary=f"kube-proxy runs with Direct Server Return, which needs Windows Server 2004 (build {DSR_MIN_BUILD}) "
        f"or later; this host is {build_name(build.value)}.",
        evidence=(
            Evidence(
                flags.source,
                "--enable-dsr="
                + flags.value.get("enable-dsr", "")
                + " --feature-gates="
                + flags.value.get("feature-gates", ""),
            ),
            Evidence(build.source, f"build {build.value}"),
        ),
        fix=("Set --enable-dsr=false (and drop WinDSR=true from --feature-gates) on kube-proxy, then restart it.",),
    )


@check(
    "network.dualstack-unsupported",
    severity=Severity.WARNING,
    title="IPv4/IPv6 dual-stack on a build or network mode that lacks it",
    docs=DOCS,
)
def dualstack_unsupported(snap: NodeSnapshot) -> Outcome:
    evidence: list[Evidence] = []
    for component in ("kubelet", "kube-proxy"):
        flags = component_flags(snap, component)
        if flags is not None and "IPv6DualStack=true" in flags.value.get("feature-gates", ""):
            evidence.append(Evidence(flags.source, f"{component} --feature-gates={flags.value['feature-gates']}"))
        if flags is not None and "," in flags.value.get("cluster-cidr", ""):
            evidence.append(Evidence(flags.source, f"{component} --cluster-cidr={flags.value['cluster-cidr']}"))
    if snap.node_object is not None:
        cidrs = (snap.node_object.value.get("spec") or {}).get("podCIDRs") or []
        if len(cidrs) > 1:
            evidence.append(Evidence(f"{snap.node_object.source} spec.podCIDRs", ", ".join(cidrs)))
    if not evidence:
        return
    build = snap.host_build()
    overlay = uses_overlay(snap)
    if build is not None and build.value < DUALSTACK_MIN_BUILD:
        why = f"this host is {build_name(build.value)}; dual-stack needs build {DUALSTACK_MIN_BUILD} or later"
    elif overlay:
        why = "dual-stack works only with l2bridge networks, not overlay (VXLAN)"
    else:
        return
    yield Fail(
        summary=f"IPv4/IPv6 dual-stack is configured, but {why}.",
        evidence=tuple(evidence) + ((Evidence(build.source, f"build {build.value}"),) if build else ()),
        fix=("Use single-stack IPv4 on this node, or move to Windows Server 2022+ with an l2bridge network.",),
    )
