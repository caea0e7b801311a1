"""The probe list: what the agent runs on a Windows node, and how its output is read.

A probe is a PowerShell command and a parser from ``diagnostics.parsers``; its
parsed value lands in the ``NodeSnapshot`` field named here. The agent runs the
commands; the dashboard parses the raw output it receives (so a parser fix
applies to every agent already deployed). Probe ids are part of the
``node-report/v1`` contract: never rename one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: How often a probe runs: every cycle, or hourly (and when the agent starts) for what changes slowly.
EVERY_CYCLE = "cycle"
HOURLY = "hourly"


@dataclass(frozen=True)
class ProbeSpec:
    id: str  # stable, e.g. "hns.networks"
    field: str  # NodeSnapshot field the parsed value fills
    command: str  # what ``agent/probes.ps1`` runs for it, as people read it in a report
    parser: str  # "module:function" in diagnostics.parsers, imported on first use
    tier: str = EVERY_CYCLE

    def parse(self, output: str) -> Any:
        module_name, func_name = self.parser.split(":")
        func: Callable[[str], Any] = getattr(importlib.import_module(module_name), func_name)
        return func(output)


@dataclass(frozen=True)
class KnownFile:
    name: str  # logical name, the key in NodeSnapshot.files and in the report
    default_path: str  # where it lives on a typical node; agents can be configured otherwise


KNOWN_FILES: tuple[KnownFile, ...] = (
    KnownFile("subnet.env", r"C:\run\flannel\subnet.env"),
    KnownFile("net-conf.json", r"C:\etc\kube-flannel\net-conf.json"),
    KnownFile("cni.conf", r"C:\etc\cni\net.d\10-flannel.conf"),
    KnownFile("SourceVip.json", r"C:\k\SourceVip.json"),
    KnownFile("SourceVipRequest.json", r"C:\k\SourceVipRequest.json"),
    KnownFile("containerd-config.toml", r"C:\Program Files\containerd\config.toml"),
    # The kubelet's own configuration (kubeadm writes both; AKS and EKS keep flags elsewhere).
    KnownFile("kubelet-config.yaml", r"C:\var\lib\kubelet\config.yaml"),
    KnownFile("kubeadm-flags.env", r"C:\var\lib\kubelet\kubeadm-flags.env"),
    # Calico for Windows (the "Calico for Windows" install keeps its settings in config.ps1).
    KnownFile("calico-config.ps1", r"C:\CalicoWindows\config.ps1"),
    # Azure CNI (AKS): its conflist and its own log of every ADD/DEL.
    KnownFile("azure-cni.conflist", r"C:\k\azurecni\netconf\10-azure.conflist"),
)

# The Windows PowerShell source of every probe is agent/probes.ps1 (one table, one id per entry);
# ``command`` below names the cmdlets for people reading a report.
PROBES: tuple[ProbeSpec, ...] = (
    ProbeSpec(
        "os.version",
        "os",
        "Get-ItemProperty 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion' | Select-Object ProductName, "
        "EditionID, DisplayVersion, ReleaseId, CurrentBuild, UBR | ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_os_version",
        HOURLY,
    ),
    ProbeSpec(
        "os.hotfixes",
        "hotfixes",
        "Get-HotFix | Select-Object HotFixID, Description, InstalledOn | ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_hotfixes",
        HOURLY,
    ),
    ProbeSpec(
        "computer.info",
        "computer",
        "Get-CimInstance Win32_ComputerSystem | Select-Object Manufacturer, Model, HypervisorPresent | ConvertTo-Json",
        "diagnostics.parsers.windows:parse_computer_info",
        HOURLY,
    ),
    ProbeSpec(
        "bitlocker",
        "bitlocker",
        "Get-BitLockerVolume | Select-Object MountPoint, ProtectionStatus, VolumeStatus | ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_bitlocker",
        HOURLY,
    ),
    ProbeSpec(
        "env.machine",
        "machine_env",
        "Get-ItemProperty 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Environment' "
        "(the allow-listed names only) | ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_machine_env",
        HOURLY,
    ),
    ProbeSpec(
        "services",
        "services",
        "Get-CimInstance Win32_Service (Kubernetes, CNI, HNS and vmcompute services) with nssm's Parameters "
        "| ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_services",
    ),
    ProbeSpec(
        "processes",
        "processes",
        "Get-CimInstance Win32_Process (Kubernetes and CNI daemons) | Select-Object Name, ProcessId, CommandLine "
        "| ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_processes",
    ),
    ProbeSpec("images", "images", "crictl images -o json", "diagnostics.parsers.runtime:parse_images"),
    ProbeSpec(
        "net.adapters",
        "adapters",
        "Get-NetAdapter | Select-Object Name, InterfaceDescription, ifIndex, Status, MacAddress, LinkSpeed "
        "| ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_adapters",
    ),
    ProbeSpec(
        "net.ipconfig",
        "ip_config",
        "Get-NetIPConfiguration -AllCompartments -Detailed (addresses, gateways, DNS servers) "
        "| ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_ipconfig",
    ),
    ProbeSpec(
        "net.ipaddresses",
        "ip_addresses",
        "Get-NetIPAddress -IncludeAllCompartments | Select-Object InterfaceAlias, InterfaceIndex, IPAddress, "
        "PrefixLength, AddressFamily | ConvertTo-Json -Compress",
        "diagnostics.parsers.netcim:parse_ip_addresses",
    ),
    ProbeSpec(
        "net.routes",
        "routes",
        "Get-NetRoute -IncludeAllCompartments | Select-Object DestinationPrefix, NextHop, InterfaceAlias, "
        "InterfaceIndex, RouteMetric, CompartmentId | ConvertTo-Json -Compress",
        "diagnostics.parsers.netcim:parse_routes",
    ),
    ProbeSpec(
        "net.interfaces",
        "ip_interfaces",
        "Get-NetIPInterface -IncludeAllCompartments | Select-Object InterfaceAlias, InterfaceIndex, AddressFamily, "
        "NlMtu, ConnectionState, CompartmentId | ConvertTo-Json -Compress",
        "diagnostics.parsers.netcim:parse_ip_interfaces",
    ),
    ProbeSpec(
        "ports.dynamic",
        "dynamic_ports",
        "Get-NetTCPSetting | Select-Object SettingName, DynamicPortRangeStartPort, DynamicPortRangeNumberOfPorts "
        "| ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_dynamic_port_range",
    ),
    ProbeSpec(
        "ports.dynamic.udp",
        "udp_dynamic_ports",
        "Get-NetUDPSetting | Select-Object DynamicPortRangeStartPort, DynamicPortRangeNumberOfPorts | ConvertTo-Json",
        "diagnostics.parsers.windows:parse_udp_dynamic_port_range",
    ),
    ProbeSpec(
        "ports.excluded",
        "excluded_ports",
        "netsh int ipv4 show excludedportrange protocol=tcp",
        "diagnostics.parsers.windows:parse_excluded_port_ranges",
    ),
    ProbeSpec(
        "ports.excluded.udp",
        "udp_excluded_ports",
        "netsh int ipv4 show excludedportrange protocol=udp",
        "diagnostics.parsers.windows:parse_udp_excluded_port_ranges",
    ),
    ProbeSpec(
        "hyperv.events",
        "hyperv_events",
        "Get-WinEvent Microsoft-Windows-Hyper-V-Compute-Admin (7 days) and -Operational warnings and errors (1 day) "
        "| Select-Object TimeCreated, Level, Id, ProviderName, LogName, Message | ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_hns_events",
    ),
    ProbeSpec(
        "hns.events",
        "hns_events",
        "Get-WinEvent Microsoft-Windows-Host-Network-Service-Admin and Service Control Manager 7031/7034 about HNS "
        "(7 days) | Select-Object TimeCreated, Level, Id, Message | ConvertTo-Json -Compress",
        "diagnostics.parsers.windows:parse_hns_events",
    ),
    ProbeSpec(
        "hns.networks",
        "hns_networks",
        "Get-HnsNetwork (else hnsdiag list networks -d) | ConvertTo-Json -Depth 8 -Compress",
        "diagnostics.parsers.hns:parse_networks",
    ),
    ProbeSpec(
        "hns.endpoints",
        "hns_endpoints",
        "Get-HnsEndpoint (else hnsdiag list endpoints -d) | ConvertTo-Json -Depth 8 -Compress",
        "diagnostics.parsers.hns:parse_endpoints",
    ),
    ProbeSpec(
        "hns.policies",
        "hns_policies",
        "Get-HnsLoadBalancer or Get-HnsPolicyList (else hnsdiag list loadbalancers -d) | ConvertTo-Json -Depth 8 "
        "-Compress",
        "diagnostics.parsers.hns:parse_policies",
    ),
    ProbeSpec(
        "hns.namespaces",
        "hns_namespaces",
        "Get-HnsNamespace (else hnsdiag list namespaces -d) | ConvertTo-Json -Depth 8 -Compress",
        "diagnostics.parsers.hns:parse_namespaces",
    ),
    ProbeSpec("hns.diag", "hnsdiag", "hnsdiag list all", "diagnostics.parsers.hns:parse_hnsdiag", HOURLY),
)

#: Machine environment variables the checks read; the agent sends no other (``$EnvAllowList`` in probes.ps1).
MACHINE_ENV_ALLOW_LIST = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "KUBE_NETWORK",
    "CONTAINER_RUNTIME_ENDPOINT",
    "KUBECONFIG",
    "NODE_NAME",
    "CNI_BIN_PATH",
    "CNI_CONFIG_PATH",
    "CALICO_NETWORKING_BACKEND",
)

#: Probes that ask the Host Network Service; when they time out, HNS does not answer.
HNS_PROBES = ("hns.networks", "hns.endpoints", "hns.policies", "hns.namespaces", "hns.diag")

PROBES_BY_ID: dict[str, ProbeSpec] = {p.id: p for p in PROBES}
