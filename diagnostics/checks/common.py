"""What several areas' checks read the same way: evidence from log hits, parsed files,
the node's own names and addresses, and which network plugin the node uses.

Everything here is a pure function of the ``NodeSnapshot``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from diagnostics.facts import Service
from diagnostics.model import Evidence, FixStep
from diagnostics.parsers import flannel as flannel_files
from diagnostics.snapshot import Fact, FileFact, LogHit, NodeSnapshot
from diagnostics.versions import parse_version

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

MAX_LOG_EVIDENCE = 4


def per_snapshot(func: F) -> F:
    """Memoize a pure function of (snapshot, *hashable args) for the snapshot being checked.

    Many checks derive the same things (the Windows workloads, parsed flags); one run of the
    catalogue computes each once. Only the most recent snapshot is kept (by weak reference),
    so memory stays flat and a new snapshot never sees stale values.
    """
    state: list[tuple[weakref.ref[NodeSnapshot] | None, dict[Any, Any]]] = [(None, {})]

    @functools.wraps(func)
    def wrapper(snap: NodeSnapshot, *args: Any, **kwargs: Any) -> Any:
        ref, cache = state[0]
        if ref is None or ref() is not snap:
            cache = {}
            state[0] = (weakref.ref(snap), cache)
        key = (args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = func(snap, *args, **kwargs)
        return cache[key]

    return wrapper  # type: ignore[return-value]


@per_snapshot
def component_flags(snap: NodeSnapshot, component: str) -> Fact[dict[str, str]] | None:
    """``snap.component_flags``, parsed once per snapshot."""
    return snap.component_flags(component)


def hit_evidence(hits: Iterable[LogHit], limit: int = MAX_LOG_EVIDENCE) -> tuple[Evidence, ...]:
    """Evidence for log hits: the first ``limit - 1`` and the last one, so both onset and latest show."""
    items = sorted(hits, key=lambda h: (h.source, h.line))
    if len(items) > limit:
        items = items[: limit - 1] + items[-1:]
    return tuple(Evidence(h.source, h.excerpt, h.line) for h in items)


@per_snapshot
def parsed_file(snap: NodeSnapshot, name: str, parser: Callable[[str], T]) -> tuple[FileFact | None, T | None]:
    """A known file and its parsed content; (fact, None) when absent or unreadable, (None, None) if not collected."""
    fact = snap.file(name)
    if fact is None or fact.content is None:
        return fact, None
    try:
        return fact, parser(fact.content)
    except ValueError:
        return fact, None


def subnet_env(snap: NodeSnapshot) -> tuple[FileFact | None, flannel_files.SubnetEnv | None]:
    return parsed_file(snap, "subnet.env", flannel_files.parse_subnet_env)


def net_conf(snap: NodeSnapshot) -> tuple[FileFact | None, flannel_files.NetConf | None]:
    return parsed_file(snap, "net-conf.json", flannel_files.parse_net_conf)


def cni_conf(snap: NodeSnapshot) -> tuple[FileFact | None, flannel_files.CniConf | None]:
    return parsed_file(snap, "cni.conf", flannel_files.parse_cni_conf)


@per_snapshot
def uses_flannel(snap: NodeSnapshot) -> bool | None:
    """Whether the node runs Flannel; None when nothing collected can tell."""
    if snap.component_command_line("flanneld") is not None or snap.service("flanneld") is not None:
        return True
    if "flanneld" in snap.logs_seen or any(h.log_kind == "flanneld" for h in snap.log_hits):
        return True
    for name in ("net-conf.json", "subnet.env"):
        fact = snap.file(name)
        if fact is not None and fact.exists:
            return True
    _fact, cni = cni_conf(snap)
    if cni is not None:
        return "flannel" in (cni.type + cni.delegate_type).lower()
    if snap.pods is not None and any("flannel" in pod_name(p) for p in snap.pods.value):
        return True
    if snap.services is not None or snap.processes is not None:
        return False
    return None


# Names of services/processes that identify a network plugin (Windows service names and executables).
_PLUGIN_DAEMONS = {
    "calico": ("caliconode", "calicofelix", "calico-node", "calico-felix"),
    "azure-cni": ("azure-vnet", "azure-cns"),
    "flannel": ("flanneld",),
}
# Known files that identify a plugin when they exist.
_PLUGIN_FILES = {"calico": ("calico-config.ps1",), "azure-cni": ("azure-cni.conflist",)}


@per_snapshot
def network_plugin(snap: NodeSnapshot) -> Fact[str] | None:
    """The network plugin the node runs: ``flannel``, ``calico`` or ``azure-cni``; None when nothing tells.

    Calico and Azure CNI are recognised by their daemons and files first: a leftover Flannel
    file must not make a Calico node look like a Flannel one.
    """
    for plugin in ("calico", "azure-cni"):
        names = _PLUGIN_DAEMONS[plugin]
        for facts in (snap.services, snap.processes):
            if facts is None:
                continue
            for item in facts.value:
                if item.name.lower().removesuffix(".exe") in names:
                    return Fact(plugin, f"{facts.source} {item.name}")
        for name in _PLUGIN_FILES[plugin]:
            fact = snap.file(name)
            if fact is not None and fact.exists:
                return Fact(plugin, fact.path)
    _fact, cni = cni_conf(snap)
    if cni is not None and "azure" in (cni.type + cni.delegate_type).lower():
        return Fact("azure-cni", _fact.path if _fact else "cni.conf")
    if cni is not None and "calico" in (cni.type + cni.delegate_type).lower():
        return Fact("calico", _fact.path if _fact else "cni.conf")
    if uses_flannel(snap):
        return Fact("flannel", "flanneld service, process, log or files")
    return None


@per_snapshot
def uses_overlay(snap: NodeSnapshot) -> bool | None:
    """Overlay (VXLAN) networking: a Flannel vxlan backend, an HNS Overlay network or a win-overlay CNI."""
    _f, conf = net_conf(snap)
    if conf is not None and conf.backend_type:
        return conf.backend_type == "vxlan"
    _c, cni = cni_conf(snap)
    if cni is not None and (cni.type or cni.delegate_type):
        return "overlay" in (cni.type + cni.delegate_type).lower()
    if snap.hns_networks is not None:
        types = {n.type for n in snap.hns_networks.value}
        if "overlay" in types:
            return True
        if "l2bridge" in types:
            return False
    flags = component_flags(snap, "kube-proxy")
    if flags is not None and ("source-vip" in flags.value or "WinOverlay=true" in flags.value.get("feature-gates", "")):
        return True
    return None


def pod_name(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")


def node_hostname(snap: NodeSnapshot) -> str:
    """The name the node registered with (what ``--hostname-override`` must say)."""
    if snap.node_object is not None:
        meta = snap.node_object.value.get("metadata") or {}
        label = (meta.get("labels") or {}).get("kubernetes.io/hostname")
        if label:
            return str(label)
        if meta.get("name"):
            return str(meta["name"])
    return snap.node


def node_addresses(snap: NodeSnapshot) -> list[Fact[str]]:
    """The node's IPv4/IPv6 addresses: InternalIP/ExternalIP from the API, then ipconfig's."""
    found: list[Fact[str]] = []
    if snap.node_object is not None:
        for addr in (snap.node_object.value.get("status") or {}).get("addresses") or []:
            if isinstance(addr, dict) and addr.get("type") in ("InternalIP", "ExternalIP") and addr.get("address"):
                found.append(Fact(str(addr["address"]), f"{snap.node_object.source} status.addresses"))
    if snap.ip_config is not None:
        for iface in snap.ip_config.value:
            for ip in (*iface.ipv4, *iface.ipv6):
                found.append(Fact(ip, f"{snap.ip_config.source} {iface.name}"))
    return found


def node_ip(snap: NodeSnapshot) -> Fact[str] | None:
    """The node's main IPv4: InternalIP, else the vEthernet adapter's, else the adapter with a gateway."""
    if snap.node_object is not None:
        for addr in (snap.node_object.value.get("status") or {}).get("addresses") or []:
            if isinstance(addr, dict) and addr.get("type") == "InternalIP" and is_ipv4(str(addr.get("address"))):
                return Fact(str(addr["address"]), f"{snap.node_object.source} status.addresses[InternalIP]")
    if snap.ip_config is not None:
        ranked = sorted(
            (i for i in snap.ip_config.value if i.ipv4),
            key=lambda i: (not i.name.lower().startswith("vethernet (ethernet"), not i.gateways),
        )
        for iface in ranked:
            if not iface.name.lower().startswith(("vethernet (nat)", "loopback")):
                return Fact(iface.ipv4[0], f"{snap.ip_config.source} {iface.name}")
    return None


def management_subnet(snap: NodeSnapshot) -> Fact[str] | None:
    """The host (management) network: the node IP's subnet from ipconfig, else a /24 guess is not made."""
    ip = node_ip(snap)
    if ip is None or snap.ip_config is None:
        return None
    for iface in snap.ip_config.value:
        for entry in iface.ipv4:
            if entry.split("/")[0] == ip.value.split("/")[0] and "/" in entry:
                return Fact(flannel_files.network_of(entry), f"{snap.ip_config.source} {iface.name}")
    return None


def is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text.split("/")[0]), ipaddress.IPv4Address)
    except ValueError:
        return False


def in_network(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("/")[0]) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def kubelet_minor(snap: NodeSnapshot) -> Fact[int] | None:
    """The kubelet's Kubernetes minor version (1.<minor>) from the Node object."""
    version = snap.node_info().get("kubeletVersion")
    parsed = parse_version(str(version or ""))
    if parsed is None or snap.node_object is None:
        return None
    return Fact(parsed[1], f"{snap.node_object.source} status.nodeInfo.kubeletVersion={version}")


def ps_quote(text: str) -> str:
    """A PowerShell single-quoted string."""
    return "'" + text.replace("'", "''") + "'"


def restart_command(snap: NodeSnapshot, component: str) -> str:
    """The command that restarts a component on this node: its service, its pod (a HostProcess DaemonSet),
    else the service by its usual name."""
    svc = snap.service(component) or snap.service(component.replace("-", ""))
    if svc is not None:
        return f"Restart-Service {svc.name}"
    if snap.pods is not None:
        key = "flannel" if component == "flanneld" else component
        for pod in snap.pods.value:
            meta = pod.get("metadata") or {}
            if key in str(meta.get("name", "")):
                return f"kubectl delete pod -n {meta.get('namespace', 'kube-system')} {meta.get('name')}"
    return f"Restart-Service {component}"


def run_by_nssm(svc: Service) -> bool:
    """Whether a component's service is a wrapper (nssm) rather than the binary itself.

    The services parser shows an nssm service by the command it runs (Application + AppParameters),
    so nssm may not appear in it; a native kubelet/kube-proxy service always passes
    ``--windows-service``. Without it, the service is a wrapper: its arguments are changed with
    ``nssm set <service> AppParameters``; ``sc.exe config binPath=`` would remove nssm.
    """
    line = svc.command_line.lower()
    return "nssm" in line or not re.search(r"\s--(?:windows-)?service\b", line)


def change_arguments_steps(svc: Service, program: str, arguments: str) -> tuple[FixStep, ...]:
    """The commands that give a component's service new arguments, and restart it."""
    if run_by_nssm(svc):
        return (
            FixStep(
                f"{svc.name} runs under nssm: change its arguments with nssm (sc.exe config would replace nssm and "
                "the service would no longer start), then restart it.",
                (f"nssm set {svc.name} AppParameters {arguments}", f"Restart-Service {svc.name}"),
            ),
        )
    return (
        FixStep(
            f"{svc.name} is a native service: give it the new command line, then restart it.",
            (f'sc.exe config {svc.name} binPath= "{program} {arguments}"', f"Restart-Service {svc.name}"),
        ),
    )
