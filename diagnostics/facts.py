"""Typed facts about a Windows node, as parsers produce them.

Every parser in ``diagnostics.parsers`` returns one of these (or a list of
them). They carry values only; where a value came from is recorded by
``diagnostics.snapshot.Fact`` around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OsInfo:
    build: int  # 17763, 20348, 26100 ...
    ubr: int | None = None  # update build revision: 10.0.17763.<ubr>
    edition: str = ""  # ServerDatacenter, ServerStandard ...
    product_name: str = ""  # "Windows Server 2019 Datacenter"
    display_version: str = ""  # "1809", "21H2", "24H2"

    @property
    def version(self) -> str:
        return f"10.0.{self.build}.{self.ubr}" if self.ubr is not None else f"10.0.{self.build}"


@dataclass(frozen=True)
class HotFix:
    id: str  # "KB4489899"
    installed_on: str = ""


@dataclass(frozen=True)
class HnsSubnet:
    prefix: str  # "10.244.1.0/24"
    gateway: str = ""


@dataclass(frozen=True)
class HnsNetwork:
    """An HNS network, normalized from the v1 (hns.psm1) or v2 (HCN) schema."""

    id: str
    name: str
    type: str  # lower-cased: l2bridge, overlay, nat, transparent, l2tunnel, ics, private
    subnets: tuple[HnsSubnet, ...] = ()
    management_ip: str = ""
    adapter_name: str = ""
    schema: int = 1
    vxlan_vni: int | None = None  # from a VSID / overlay policy, when present
    vxlan_port: int | None = None


@dataclass(frozen=True)
class HnsEndpoint:
    id: str
    name: str
    ip: str
    network: str = ""  # network id or name
    state: str = ""  # v1 State (e.g. "1"/"Attached"/"Detached"), empty for v2
    is_remote: bool = False
    mac: str = ""
    namespace: str = ""


@dataclass(frozen=True)
class HnsPortMapping:
    protocol: str  # "TCP" / "UDP" (v2 numbers 6/17 are mapped)
    internal_port: int
    external_port: int


@dataclass(frozen=True)
class HnsLoadBalancer:
    """A load balancer (v2) or an ELB policy list (v1)."""

    id: str
    vips: tuple[str, ...] = ()
    ports: tuple[HnsPortMapping, ...] = ()
    endpoint_ids: tuple[str, ...] = ()
    source_vip: str = ""
    dsr: bool = False
    applied: bool = True


@dataclass(frozen=True)
class NetAdapter:
    name: str  # "vEthernet (Ethernet)"
    description: str = ""
    if_index: int | None = None
    status: str = ""  # Up / Disconnected / Disabled / Not Present
    mac: str = ""
    link_speed: str = ""


@dataclass(frozen=True)
class IpInterface:
    """One adapter block of ``ipconfig /all``."""

    name: str  # "vEthernet (Ethernet)"
    description: str = ""
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    mac: str = ""
    gateways: tuple[str, ...] = ()
    dns_servers: tuple[str, ...] = ()
    dns_suffix: str = ""


@dataclass(frozen=True)
class Service:
    name: str  # "kubelet"
    status: str = ""  # Running / Stopped / StartPending ...
    start_type: str = ""  # Automatic / Manual / Disabled
    command_line: str = ""  # BINARY_PATH_NAME or PathName; nssm AppParameters appended
    display_name: str = ""

    @property
    def running(self) -> bool:
        return self.status.lower() == "running"


@dataclass(frozen=True)
class Process:
    name: str  # "kubelet.exe"
    pid: int | None = None
    command_line: str = ""


@dataclass(frozen=True)
class ComputerInfo:
    manufacturer: str = ""
    model: str = ""  # "Virtual Machine", "VMware Virtual Platform", "PowerEdge R740"
    hypervisor_present: bool | None = None

    @property
    def is_vm(self) -> bool:
        text = f"{self.manufacturer} {self.model}".lower()
        return any(
            k in text for k in ("virtual", "vmware", "hyper-v", "kvm", "qemu", "xen", "amazon ec2", "google compute")
        )


@dataclass(frozen=True)
class BitLocker:
    mount_point: str
    protection_status: str  # "On" / "Off"
    volume_status: str = ""  # FullyEncrypted / FullyDecrypted ...


@dataclass(frozen=True)
class Image:
    repository: str  # "registry.k8s.io/pause"
    tag: str = ""
    id: str = ""
    size: str = ""

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else self.repository


@dataclass(frozen=True)
class PortRange:
    start: int
    count: int


@dataclass(frozen=True)
class HnsEvent:
    """An event-log record about the Host Network Service."""

    time: str
    level: str
    id: int | None
    message: str


@dataclass(frozen=True)
class ConnectivityResult:
    """The result of an on-demand connectivity test run by the agent.

    ``kind`` is one of ``ping``, ``curl``, ``nodeport``, ``service-vip``, ``dns``;
    ``origin`` is ``node``, ``pod`` or ``peer`` (another node).
    """

    kind: str
    target: str
    origin: str
    ok: bool
    output: str = ""
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IpAddress:
    """One address of ``Get-NetIPAddress -IncludeAllCompartments``."""

    interface: str  # InterfaceAlias
    index: int
    address: str
    prefix_length: int
    family: str  # "IPv4" | "IPv6"


@dataclass(frozen=True)
class Route:
    """One route of ``Get-NetRoute -IncludeAllCompartments``."""

    destination: str  # "0.0.0.0/0"
    next_hop: str
    interface: str
    index: int
    metric: int | None = None
    compartment: int | None = None


@dataclass(frozen=True)
class NetInterface:
    """One IP interface of ``Get-NetIPInterface -IncludeAllCompartments``: its MTU per address family."""

    interface: str
    index: int
    family: str  # "IPv4" | "IPv6"
    mtu: int | None
    connected: bool | None = None
    compartment: int | None = None


@dataclass(frozen=True)
class HnsNamespace:
    """A network namespace (a network compartment) of HNS and the endpoints in it."""

    id: str
    compartment: int | None = None
    endpoint_ids: tuple[str, ...] = ()
