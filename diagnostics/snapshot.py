"""``NodeSnapshot``: everything known about one Windows node at one moment.

A snapshot is built by a collector (the agent's report, the Kubernetes API, a
bundle on disk) and is never changed afterwards; checks only read it. Every fact
carries its ``source`` (a probe, a file path, an API object) so that evidence can
name it. ``None`` means "not collected": a check that needs it yields ``Unknown``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from diagnostics.facts import (
    BitLocker,
    ComputerInfo,
    ConnectivityResult,
    HnsEndpoint,
    HnsEvent,
    HnsLoadBalancer,
    HnsNamespace,
    HnsNetwork,
    HotFix,
    Image,
    IpAddress,
    IpInterface,
    NetAdapter,
    NetInterface,
    OsInfo,
    PortRange,
    Process,
    Route,
    Service,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A value and where it came from (``probe:hns.networks``, ``logs/kubelet.log``, ``Node/win-1``)."""

    value: T
    source: str


@dataclass(frozen=True)
class FileFact:
    """A known file on the node. ``content is None`` means the file does not exist."""

    path: str  # the Windows path, e.g. C:\run\flannel\subnet.env
    content: str | None
    source: str

    @property
    def exists(self) -> bool:
        return self.content is not None


@dataclass(frozen=True)
class LogHit:
    """A log line that matched a known pattern (``diagnostics.logs``)."""

    check: str
    source: str  # path of the log as the user knows it (logs/kubelet.log, C:\k\kubelet.log)
    line: int
    excerpt: str
    log_kind: str  # kubelet, kube-proxy, flanneld, runtime, start-script, describe, transcript


@dataclass(frozen=True)
class PeerSummary:
    """What cluster-wide checks need to know about another Windows node."""

    node: str
    facts: Mapping[str, str]  # e.g. {"pause_image": ..., "runtime_version": ..., "hotfix_level": ...}


@dataclass(frozen=True)
class ClusterView:
    """Cluster-wide context for one node's checks (from the API or a bundle)."""

    server_version: str = ""  # "v1.30.2"
    cluster_cidr: str = ""  # pods, e.g. 10.244.0.0/16
    service_cidr: str = ""  # e.g. 10.96.0.0/12
    services: tuple[dict[str, Any], ...] = ()  # API Service objects
    endpoint_slices: tuple[dict[str, Any], ...] = ()  # API EndpointSlice objects
    peers: tuple[PeerSummary, ...] = ()
    source: str = ""
    # How many Windows nodes have each value of each peer fact, this node included when it is
    # among them (its own summary is ``own``): shared by every node of a cluster, so that comparing
    # a node with its peers costs the number of facts, not of peers. None: count ``peers``.
    peer_counts: Mapping[str, Mapping[str, int]] | None = None
    own: PeerSummary | None = None
    # ``services`` with ``sessionAffinity: ClientIP``, filtered once for every node of a cluster
    # (a cluster has thousands of Services, few with affinity). None: filter ``services``.
    affinity_services: tuple[dict[str, Any], ...] | None = None

    def client_ip_services(self) -> tuple[dict[str, Any], ...]:
        """The Services with ``sessionAffinity: ClientIP``."""
        if self.affinity_services is not None:
            return self.affinity_services
        return client_ip_affinity(self.services)

    def peers_agree_on(self, key: str) -> tuple[str, int] | None:
        """(the value, how many peers) when every peer that has fact ``key`` has the same value; else None.

        Costs the number of distinct values (at most three looked at), not the number of peers.
        """
        counts = self.peer_counts if self.peer_counts is not None else count_peer_facts(self.peers)
        values = counts.get(key) or {}
        if len(values) > 2:  # removing this node's own value leaves at least two
            return None
        own = self.own.facts.get(key) if self.own is not None and self.peer_counts is not None else None
        left = {v: n - (v == own) for v, n in values.items() if n - (v == own) > 0}
        if len(left) != 1:
            return None
        [(value, n)] = left.items()
        return value, n


def client_ip_affinity(services: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The Services of ``services`` with ``sessionAffinity: ClientIP``."""
    return tuple(s for s in services if (s.get("spec") or {}).get("sessionAffinity") == "ClientIP")


def count_peer_facts(peers: Iterable[PeerSummary]) -> dict[str, dict[str, int]]:
    """Fact -> value -> how many of ``peers`` have it."""
    counts: dict[str, dict[str, int]] = {}
    for peer in peers:
        for key, value in peer.facts.items():
            if value:
                per_key = counts.setdefault(key, {})
                per_key[value] = per_key.get(value, 0) + 1
    return counts


@dataclass(frozen=True)
class NodeSnapshot:
    node: str
    cluster: str = ""
    collected_at: str = ""  # ISO 8601 UTC
    agent_version: str = ""

    # From the agent's probes (or a bundle's files of the same content).
    os: Fact[OsInfo] | None = None
    hotfixes: Fact[tuple[HotFix, ...]] | None = None
    hns_networks: Fact[tuple[HnsNetwork, ...]] | None = None
    hns_endpoints: Fact[tuple[HnsEndpoint, ...]] | None = None
    hns_policies: Fact[tuple[HnsLoadBalancer, ...]] | None = None
    hns_events: Fact[tuple[HnsEvent, ...]] | None = None
    adapters: Fact[tuple[NetAdapter, ...]] | None = None
    ip_config: Fact[tuple[IpInterface, ...]] | None = None
    services: Fact[tuple[Service, ...]] | None = None
    processes: Fact[tuple[Process, ...]] | None = None
    machine_env: Fact[Mapping[str, str]] | None = None
    computer: Fact[ComputerInfo] | None = None
    bitlocker: Fact[tuple[BitLocker, ...]] | None = None
    images: Fact[tuple[Image, ...]] | None = None
    dynamic_ports: Fact[PortRange] | None = None
    excluded_ports: Fact[tuple[PortRange, ...]] | None = None
    ip_addresses: Fact[tuple[IpAddress, ...]] | None = None
    routes: Fact[tuple[Route, ...]] | None = None
    ip_interfaces: Fact[tuple[NetInterface, ...]] | None = None  # MTU per interface and address family
    udp_dynamic_ports: Fact[PortRange] | None = None
    udp_excluded_ports: Fact[tuple[PortRange, ...]] | None = None
    hyperv_events: Fact[tuple[HnsEvent, ...]] | None = None  # Hyper-V-Compute Admin/Operational
    hns_namespaces: Fact[tuple[HnsNamespace, ...]] | None = None
    hnsdiag: Fact[str] | None = None  # hnsdiag list all, for people
    # Probes that did not give a whole answer: probe id -> why ("timed out ...", "output cut ...").
    # A check that reads such a probe's field says unknown with this reason, never fail.
    incomplete: Mapping[str, str] = field(default_factory=dict)
    unanswered: frozenset[str] = frozenset()  # the probe ids of ``incomplete`` that timed out
    connectivity: tuple[ConnectivityResult, ...] = ()
    # The network mode text about this node expects ("l2bridge" / "overlay"), when nothing better says.
    network_hint: Fact[str] | None = None

    # Known files by logical name: subnet.env, net-conf.json, cni.conf,
    # SourceVip.json, SourceVipRequest.json, containerd-config.toml.
    files: Mapping[str, FileFact] = field(default_factory=dict)

    # Logs: which kinds were read (kind -> source path), and what matched.
    logs_seen: Mapping[str, str] = field(default_factory=dict)
    log_hits: tuple[LogHit, ...] = ()

    # From the Kubernetes API, as the API returns them (JSON dicts, camelCase).
    node_object: Fact[dict[str, Any]] | None = None
    pods: Fact[tuple[dict[str, Any], ...]] | None = None  # pods bound to this node
    events: Fact[tuple[dict[str, Any], ...]] | None = None  # events about this node and its pods
    workloads: tuple[dict[str, Any], ...] = ()  # other objects to check (controllers, pods not bound here)
    cluster_view: ClusterView | None = None

    # -- derived facts that many checks share ---------------------------------

    def file(self, name: str) -> FileFact | None:
        return self.files.get(name)

    def service(self, name: str) -> Service | None:
        if self.services is None:
            return None
        wanted = name.lower()
        for svc in self.services.value:
            if svc.name.lower() == wanted:
                return svc
        return None

    def component_command_line(self, component: str) -> Fact[str] | None:
        """The command line of kubelet / kube-proxy / flanneld / containerd.

        The service's binary path (with nssm's AppParameters) wins over the
        running process's command line; both are accepted since nodes differ.
        """
        names = _COMPONENT_NAMES.get(component, (component,))
        if self.services is not None:
            for svc in self.services.value:
                if svc.name.lower() in names and svc.command_line:
                    return Fact(svc.command_line, self.services.source)
        if self.processes is not None:
            for proc in self.processes.value:
                if proc.name.lower().removesuffix(".exe") in names and proc.command_line:
                    return Fact(proc.command_line, self.processes.source)
        return None

    def component_flags(self, component: str) -> Fact[dict[str, str]] | None:
        """``--flag=value`` / ``--flag value`` pairs of a component's command line."""
        line = self.component_command_line(component)
        if line is None:
            return None
        return Fact(parse_flags(line.value), line.source)

    def pod_cidr(self) -> Fact[str] | None:
        if self.node_object is None:
            return None
        spec = self.node_object.value.get("spec") or {}
        cidr = spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), None)
        return Fact(str(cidr), self.node_object.source + " spec.podCIDR") if cidr else None

    def host_build(self) -> Fact[int] | None:
        """The host's Windows build from the agent, else from the Node object."""
        if self.os is not None:
            return Fact(self.os.value.build, self.os.source)
        if self.node_object is not None:
            info = (self.node_object.value.get("status") or {}).get("nodeInfo") or {}
            match = re.match(r"10\.0\.(\d+)", str(info.get("kernelVersion", "")))
            if match:
                return Fact(int(match.group(1)), self.node_object.source + " status.nodeInfo.kernelVersion")
        return None

    def node_info(self) -> dict[str, Any]:
        if self.node_object is None:
            return {}
        return dict((self.node_object.value.get("status") or {}).get("nodeInfo") or {})

    def hits(self, check: str) -> list[LogHit]:
        return [h for h in self.log_hits if h.check == check]


_COMPONENT_NAMES: dict[str, tuple[str, ...]] = {
    "kubelet": ("kubelet",),
    "kube-proxy": ("kube-proxy", "kubeproxy"),
    "flanneld": ("flanneld", "flannel"),
    "containerd": ("containerd",),
    "docker": ("docker", "dockerd"),
}


def parse_flags(command_line: str) -> dict[str, str]:
    """Flags of a Windows command line: ``--a=b``, ``--a b``, ``-a b``; bare flags map to ``"true"``."""
    try:
        words = shlex.split(command_line.replace("\\", "\\\\"), posix=True)
    except ValueError:
        words = command_line.split()
    flags: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and len(word) > 1:
            name = word.lstrip("-")
            if "=" in name:
                key, value = name.split("=", 1)
                flags[key] = value
            elif i + 1 < len(words) and not words[i + 1].startswith("-"):
                flags[name] = words[i + 1]
                i += 1
            else:
                flags[name] = "true"
        i += 1
    return flags
