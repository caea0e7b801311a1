"""HNS (Host Network Service) state: the container network, its management IP, endpoints,
load-balancer policies and ports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from diagnostics.checks.common import (
    cni_conf,
    component_flags,
    hit_evidence,
    node_addresses,
    node_ip,
    ps_quote,
    restart_command,
    uses_flannel,
    uses_overlay,
)
from diagnostics.facts import HnsNetwork
from diagnostics.model import Evidence, Fail, FixStep, Severity, Unknown
from diagnostics.parsers.flannel import parse_source_vip
from diagnostics.registry import check
from diagnostics.snapshot import NodeSnapshot

DOCS = "https://kubernetes.io/docs/tasks/debug/debug-cluster/windows/"
NET_DOCS = "https://kubernetes.io/docs/concepts/services-networking/windows-networking/"

Outcome = Iterator[Fail | Unknown]

# Networks every Windows host may have that are not the container network.
_HOST_NETWORKS = {"nat", "ics", "default switch", "external"}


def expected_network(snap: NodeSnapshot) -> tuple[str, str, bool] | None:
    """(name, where the name comes from, explicit) of the HNS network pods attach to.

    Explicit names come from kube-proxy's ``--network-name``, the ``KUBE_NETWORK`` variable or
    the CNI config; with Flannel and no explicit name the defaults are ``cbr0`` (host-gw /
    l2bridge) and ``vxlan0`` (VXLAN / overlay).
    """
    flags = component_flags(snap, "kube-proxy")
    if flags is not None and flags.value.get("network-name"):
        return flags.value["network-name"], f"{flags.source} kube-proxy --network-name", True
    line = snap.component_command_line("kube-proxy")
    if line is not None and "KUBE_NETWORK=" in line.value:
        value = line.value.split("KUBE_NETWORK=", 1)[1].split()[0].strip("\"';")
        if value:
            return value, f"{line.source} kube-proxy KUBE_NETWORK", True
    if snap.machine_env is not None and snap.machine_env.value.get("KUBE_NETWORK"):
        return snap.machine_env.value["KUBE_NETWORK"], f"{snap.machine_env.source} KUBE_NETWORK", True
    fact, cni = cni_conf(snap)
    if fact is not None and cni is not None and cni.name:
        return cni.name, f"{fact.source} name", True
    if uses_flannel(snap):
        overlay = uses_overlay(snap)
        name = "vxlan0" if overlay else "cbr0"
        return name, "the Flannel default for " + ("VXLAN" if overlay else "host-gw"), False
    return None


def container_network(snap: NodeSnapshot) -> HnsNetwork | None:
    """The HNS network pods use: the expected name, else the first network that is not a host network."""
    if snap.hns_networks is None:
        return None
    wanted = expected_network(snap)
    for net in snap.hns_networks.value:
        if wanted is not None and net.name.lower() == wanted[0].lower():
            return net
    if wanted is not None and wanted[2]:
        return None
    for net in snap.hns_networks.value:
        if net.name.lower() not in _HOST_NETWORKS and net.type not in ("nat", "ics"):
            return net
    return None


def _adapter_ok(snap: NodeSnapshot, network: HnsNetwork | None) -> bool | None:
    """Whether the vSwitch adapter exists: ``vEthernet (Ethernet*)`` or ``vEthernet (<host adapter>)``."""
    if snap.adapters is None:
        return None
    names = [a.name for a in snap.adapters.value]
    lowered = [n.lower() for n in names]
    if any(n.startswith("vethernet (ethernet") for n in lowered):
        return True
    wanted = {f"vethernet ({n})" for n in lowered if not n.startswith("vethernet")}
    if network is not None and network.adapter_name:
        wanted.add(f"vethernet ({network.adapter_name.lower()})")
    return any(n in wanted for n in lowered)


def _physical_adapter(snap: NodeSnapshot) -> str | None:
    if snap.adapters is None:
        return None
    for adapter in snap.adapters.value:
        if not adapter.name.lower().startswith(("vethernet", "loopback")) and adapter.status.lower() in ("up", ""):
            return adapter.name
    return None


@check(
    "hns.network-missing",
    severity=Severity.CRITICAL,
    title="The HNS container network is missing",
    docs=DOCS,
    probes=("hns.networks",),
)
def network_missing(snap: NodeSnapshot) -> Outcome:
    hits = snap.hits("hns.network-missing")
    no_vethernet = snap.ip_config is not None and not any(
        i.name.lower().startswith("vethernet") for i in snap.ip_config.value
    )
    if snap.hns_networks is None and snap.adapters is None and not no_vethernet and not hits:
        yield Unknown(needs=("Get-HnsNetwork", "Get-NetAdapter"))
        return
    wanted = expected_network(snap)
    network = container_network(snap)
    evidence: list[Evidence] = []
    problems: list[str] = []
    if snap.hns_networks is not None and network is None:
        listed = ", ".join(f"{n.name} ({n.type})" for n in snap.hns_networks.value) or "no network at all"
        if wanted is not None:
            problems.append(f"no HNS network named {wanted[0]!r} ({wanted[1]})")
        else:
            problems.append("no HNS network for containers")
        evidence.append(Evidence(snap.hns_networks.source, f"Get-HnsNetwork: {listed}"))
    adapter_ok = _adapter_ok(snap, network)
    if adapter_ok is False and snap.adapters is not None:
        problems.append("no vEthernet adapter for the host network")
        listed = ", ".join(a.name for a in snap.adapters.value) or "none"
        evidence.append(Evidence(snap.adapters.source, f"Get-NetAdapter: {listed}"))
    if snap.adapters is None and snap.ip_config is not None and snap.ip_config.value:
        # Absence is evidence, but only for a node meant to have the vSwitch (l2bridge / overlay networking).
        names = [i.name for i in snap.ip_config.value]
        if not any(n.lower().startswith("vethernet") for n in names):
            expects = wanted is not None or snap.network_hint is not None or uses_flannel(snap)
            if not expects and not hits:
                yield Unknown(
                    needs=(
                        "which network the node is meant to use (l2bridge or overlay: the CNI config, "
                        "kube-proxy's --network-name or Get-HnsNetwork)",
                    )
                )
                return
            problems.append("ipconfig shows no vEthernet adapter for the container network")
            evidence.append(Evidence(snap.ip_config.source, "ipconfig adapters: " + ", ".join(names)))
            if snap.network_hint is not None:
                evidence.append(Evidence(snap.network_hint.source, f"network mode: {snap.network_hint.value}"))
    evidence.extend(hit_evidence(hits))
    if not problems and not hits:
        return
    name = wanted[0] if wanted else "cbr0"
    physical = _physical_adapter(snap)
    fix = [
        FixStep(
            "See what HNS and Windows have: the container network and its vEthernet adapter.",
            (f'Get-HnsNetwork | ? Name -ieq "{name}"', 'Get-NetAdapter | ? Name -Like "vEthernet (*"'),
        )
    ]
    if physical and physical.lower() != "ethernet":
        fix.append(
            FixStep(
                f"The host adapter is named {physical!r}, not 'Ethernet': give its name to the script that creates "
                "the network (start.ps1 -InterfaceName, or the interface flanneld/the CNI uses).",
                (f".\\start.ps1 -InterfaceName {ps_quote(physical)}",),
            )
        )
    else:
        fix.append(
            FixStep(
                "If the host adapter is not named 'Ethernet', pass its real name to start.ps1 with -InterfaceName.",
                ("Get-NetAdapter | Select-Object Name, InterfaceDescription, Status",),
            )
        )
    fix.append(FixStep("Read start-kubelet.ps1's output for errors while the network was created, then run it again."))
    if uses_flannel(snap):
        fix.append(
            FixStep(
                "Restart flanneld (it creates the network), then kubelet.",
                (restart_command(snap, "flanneld"), restart_command(snap, "kubelet")),
            )
        )
    yield Fail(
        summary=(("; ".join(problems) + ". ") if problems else "")
        + "Without the HNS network and its vEthernet adapter, kubelet cannot give pods a network.",
        evidence=tuple(evidence),
        fix=tuple(fix),
    )


@check(
    "hns.management-ip-mismatch",
    severity=Severity.CRITICAL,
    title="The HNS network's management IP is not this node's address",
    docs=NET_DOCS,
    probes=("hns.networks",),
)
def management_ip_mismatch(snap: NodeSnapshot) -> Outcome:
    network = container_network(snap)
    if network is None or not network.management_ip or snap.hns_networks is None:
        return
    addresses = node_addresses(snap)
    if not addresses:
        return
    ips = {a.value.split("/")[0] for a in addresses}
    if network.management_ip in ips:
        return
    ip = node_ip(snap)
    yield Fail(
        summary=f"HNS network {network.name} has ManagementIP {network.management_ip}, which is none of this node's "
        f"addresses ({', '.join(sorted(ips))}): it was created on another interface or before the IP changed.",
        evidence=(
            Evidence(snap.hns_networks.source, f"{network.name} ManagementIP: {network.management_ip}"),
            *(Evidence(a.source, a.value) for a in addresses[:3]),
        ),
        fix=(
            f"Stop kubelet, kube-proxy and flanneld; remove the network: Get-HnsNetwork | ? Name -eq "
            f"{ps_quote(network.name)} | Remove-HnsNetwork",
            "Start flanneld (or start.ps1) with the right interface"
            + (f" (--iface={ip.value.split('/')[0]})" if ip else "")
            + ", then kubelet and kube-proxy.",
        ),
    )


def _pod_ips(snap: NodeSnapshot) -> set[str] | None:
    if snap.pods is None:
        return None
    ips: set[str] = set()
    for pod in snap.pods.value:
        status = pod.get("status") or {}
        for entry in status.get("podIPs") or []:
            if isinstance(entry, dict) and entry.get("ip"):
                ips.add(str(entry["ip"]))
        if status.get("podIP"):
            ips.add(str(status["podIP"]))
    return ips


# HNS v1 EndpointState: 0 Uninitialized, 1 Created, 2 Attached, 3 AttachedSharing (a running pod),
# 4 Detached, 5 Degraded, 6 Destroyed; some outputs spell the name instead of the number.
_BAD_STATES = {"detached", "degraded", "destroyed", "failed", "4", "5", "6"}


@check(
    "hns.endpoint-state",
    severity=Severity.WARNING,
    title="HNS endpoints are failed, detached or orphaned",
    docs=NET_DOCS,
    probes=("hns.endpoints",),
)
def endpoint_state(snap: NodeSnapshot) -> Outcome:
    if snap.hns_endpoints is None:
        return
    network = container_network(snap)
    pod_ips = _pod_ips(snap)
    reserved: set[str] = set()
    if network is not None:
        reserved.add(network.management_ip)
    for name in ("SourceVip.json",):
        fact = snap.file(name)
        if fact is not None and fact.content:
            with contextlib.suppress(ValueError):
                reserved.add(parse_source_vip(fact.content).ip)
    bad: list[Evidence] = []
    orphans: list[Evidence] = []
    for ep in snap.hns_endpoints.value:
        if ep.is_remote:
            continue
        if ep.state.lower() in _BAD_STATES:
            bad.append(Evidence(snap.hns_endpoints.source, f"{ep.id} {ep.name} {ep.ip} State={ep.state}"))
        elif pod_ips is not None and ep.ip and ep.ip not in pod_ips and ep.ip not in reserved:
            if network is not None and ep.network and ep.network not in (network.id, network.name):
                continue
            if ep.name.lower().endswith(("_ep", "-ep")) or "sourcevip" in ep.name.lower():
                continue  # the host's own endpoint (cbr0_ep) and kube-proxy's source VIP endpoint
            orphans.append(Evidence(snap.hns_endpoints.source, f"{ep.id} {ep.name} {ep.ip}: no running pod has it"))
    if not bad and not orphans:
        return
    hits = snap.hits("hns.endpoint-state")
    yield Fail(
        summary=f"{len(bad)} local HNS endpoint(s) in a failed or detached state and {len(orphans)} whose IP no "
        "running pod on this node holds.",
        evidence=(*bad[:5], *orphans[:5], *hit_evidence(hits)),
        fix=(
            "Remove the listed endpoints: Get-HnsEndpoint | ? ID -in @("
            + ", ".join(ps_quote(e.excerpt.split()[0]) for e in (bad + orphans)[:20])
            + ") | Remove-HnsEndpoint",
            "If they come back, restart kubelet and kube-proxy, and check that kube-proxy has --hostname-override.",
        ),
    )


def _slice_ips(snap: NodeSnapshot) -> set[str] | None:
    view = snap.cluster_view
    if view is None or not view.endpoint_slices:
        return None
    ips: set[str] = set()
    for es in view.endpoint_slices:
        for endpoint in es.get("endpoints") or []:
            for addr in endpoint.get("addresses") or []:
                ips.add(str(addr))
    return ips


@check(
    "hns.stale-remote-endpoints",
    severity=Severity.WARNING,
    title="Remote HNS endpoints point at pods that no longer exist",
    docs=NET_DOCS,
    probes=("hns.endpoints",),
    reads={"agent", "services"},
)
def stale_remote_endpoints(snap: NodeSnapshot) -> Outcome:
    if snap.hns_endpoints is None:
        return
    known = _slice_ips(snap)
    if known is None:
        return
    stale = [ep for ep in snap.hns_endpoints.value if ep.is_remote and ep.ip and ep.ip not in known]
    if not stale:
        return
    yield Fail(
        summary=f"{len(stale)} remote endpoint(s) on this node hold IPs that no EndpointSlice in the cluster "
        "lists: kube-proxy did not clean them up, and traffic may go to addresses now used by other pods.",
        evidence=tuple(Evidence(snap.hns_endpoints.source, f"{ep.id} {ep.ip} IsRemoteEndpoint") for ep in stale[:8]),
        fix=(
            "Get-HnsEndpoint | ? { $_.IsRemoteEndpoint -and $_.IPAddress -in @("
            + ", ".join(ps_quote(ep.ip) for ep in stale[:20])
            + ") } | Remove-HnsEndpoint",
            restart_command(snap, "kube-proxy") + " so that it re-syncs its policies.",
        ),
    )


def _service_ports(svc: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(protocol, port, nodePort or 0) of a Service."""
    out = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        if isinstance(port, dict) and port.get("port"):
            out.append((str(port.get("protocol", "TCP")).upper(), int(port["port"]), int(port.get("nodePort") or 0)))
    return out


def _windows_ready_ips(snap: NodeSnapshot) -> dict[str, set[str]]:
    """Service name (namespace/name) -> ready endpoint IPs from the EndpointSlices."""
    out: dict[str, set[str]] = {}
    view = snap.cluster_view
    if view is None:
        return out
    for es in view.endpoint_slices:
        meta = es.get("metadata") or {}
        svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        key = f"{meta.get('namespace', 'default')}/{svc}"
        for endpoint in es.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True) is False:
                continue
            out.setdefault(key, set()).update(str(a) for a in endpoint.get("addresses") or [])
    return out


@check(
    "hns.lb-policy-missing",
    severity=Severity.WARNING,
    title="Services have no HNS load balancer on this node",
    docs=NET_DOCS,
    probes=("hns.endpoints", "hns.policies"),
    reads={"agent", "services"},
)
def lb_policy_missing(snap: NodeSnapshot) -> Outcome:
    view = snap.cluster_view
    hits = snap.hits("hns.lb-policy-missing")
    if snap.hns_policies is None or view is None or not view.services:
        if hits:  # kube-proxy itself says HNS refused its load balancers
            yield Fail(
                summary="kube-proxy could not create HNS load balancer policies: the Services it was programming "
                "do not answer on this node (ClusterIP, NodePort) until it succeeds.",
                evidence=hit_evidence(hits),
                fix=_LB_FIX(snap),
            )
        return
    ready = _windows_ready_ips(snap)
    vips: set[str] = set()
    ports: set[tuple[str, int]] = set()
    for lb in snap.hns_policies.value:
        vips.update(lb.vips)
        for mapping in lb.ports:
            ports.add((mapping.protocol.upper(), mapping.external_port))
    missing: list[Evidence] = []
    for svc in view.services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        key = f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"
        cluster_ip = str(spec.get("clusterIP") or "")
        if not ready.get(key) or cluster_ip in ("", "None") or spec.get("type") == "ExternalName":
            continue
        for protocol, port, node_port in _service_ports(svc):
            if cluster_ip not in vips and (protocol, port) not in ports:
                missing.append(Evidence(f"{view.source} Service/{key}", f"ClusterIP {cluster_ip} {protocol}/{port}"))
                break
            if node_port and (protocol, node_port) not in ports:
                missing.append(Evidence(f"{view.source} Service/{key}", f"NodePort {protocol}/{node_port}"))
                break
    stale: list[Evidence] = []
    if snap.hns_endpoints is not None:
        ep_ids = {ep.id.lower() for ep in snap.hns_endpoints.value}
        for lb in snap.hns_policies.value:
            gone = [e for e in lb.endpoint_ids if e.lower() not in ep_ids]
            if gone and len(gone) == len(lb.endpoint_ids):
                stale.append(Evidence(snap.hns_policies.source, f"{lb.id} VIPs {', '.join(lb.vips)}: endpoints gone"))
    if not missing and not stale and not hits:
        return
    told = []
    if missing:
        told.append(
            f"{_count(len(missing), 'Service')} with ready endpoints {'has' if len(missing) == 1 else 'have'} "
            "no HNS load balancer on this node"
        )
    if stale:
        told.append(
            f"{_count(len(stale), 'load balancer')} {'points' if len(stale) == 1 else 'point'} only at "
            "endpoints that no longer exist"
        )
    if not told:
        told.append("kube-proxy could not create HNS load balancer policies")
    yield Fail(
        summary=" and ".join(told) + ": kube-proxy's view and HNS have drifted apart.",
        evidence=(*missing[:8], *stale[:4], *hit_evidence(hits)),
        fix=_LB_FIX(snap),
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _LB_FIX(snap: NodeSnapshot) -> tuple[FixStep, ...]:
    return (
        FixStep(
            "Restart kube-proxy so that it programs every Service again, and watch its log for 'Policy creation "
            "failed'.",
            (restart_command(snap, "kube-proxy"), "Get-Content C:\\k\\kube-proxy.log -Tail 50 -Wait"),
        ),
        FixStep(
            "If policies stay missing, list what HNS holds and compare with the Services; check that kube-proxy's "
            "--network-name (or KUBE_NETWORK) names the HNS network and --hostname-override the node.",
            ("hnsdiag list loadbalancers", "Get-HnsNetwork | Select-Object Name, Type"),
        ),
    )


@check(
    "hns.port-exhaustion",
    severity=Severity.WARNING,
    title="The dynamic port range is nearly used up",
    docs=NET_DOCS,
    probes=("ports.dynamic", "ports.excluded"),
)
def port_exhaustion(snap: NodeSnapshot) -> Outcome:
    hits = snap.hits("hns.port-exhaustion")
    dyn = snap.dynamic_ports
    if dyn is None:
        if hits:
            yield Fail(
                summary="The logs report that ports or socket buffers ran out.",
                evidence=hit_evidence(hits),
                fix=("netsh int ipv4 show dynamicport tcp; netsh int ipv4 show excludedportrange protocol=tcp",),
            )
        return
    start, end = dyn.value.start, dyn.value.start + dyn.value.count - 1
    excluded = 0
    if snap.excluded_ports is not None:
        for rng in snap.excluded_ports.value:
            lo, hi = max(start, rng.start), min(end, rng.start + rng.count - 1)
            if hi >= lo:
                excluded += hi - lo + 1
    free = dyn.value.count - excluded
    if free >= max(2000, dyn.value.count // 5) and not hits:
        return
    evidence = [Evidence(dyn.source, f"dynamic range {start}-{end} ({dyn.value.count} ports)")]
    if snap.excluded_ports is not None:
        evidence.append(Evidence(snap.excluded_ports.source, f"{excluded} of them excluded"))
    yield Fail(
        summary=f"Only {free} of {dyn.value.count} dynamic ports remain usable: HNS port pools and excluded ranges "
        "take the rest, so SNAT and new connections start to fail.",
        evidence=(*evidence, *hit_evidence(hits)),
        fix=(
            "Widen the dynamic range: netsh int ipv4 set dynamicport tcp start=10000 num=55535 "
            "(and the same for udp), then reboot.",
            "Check which services reserve port ranges: netsh int ipv4 show excludedportrange protocol=tcp",
        ),
    )
