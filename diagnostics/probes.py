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


@dataclass(frozen=True)
class ProbeSpec:
    id: str  # stable, e.g. "hns.networks"
    field: str  # NodeSnapshot field the parsed value fills
    command: str  # the PowerShell command the agent runs
    parser: str  # "module:function" in diagnostics.parsers, imported on first use

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
)

# Services whose state and command line the checks read. nssm keeps the real
# program and its arguments under Services\<name>\Parameters (Application,
# AppParameters); Win32_Service.PathName only shows nssm.exe.
_SERVICES = (
    "'kubelet','kube-proxy','kubeproxy','flanneld','containerd','docker','hns','vfpext','csi-proxy','windows_exporter'"
)
_PROCESSES = "'kubelet.exe','kube-proxy.exe','flanneld.exe','containerd.exe','dockerd.exe','csi-proxy.exe'"

PROBES: tuple[ProbeSpec, ...] = (
    ProbeSpec(
        "os.version",
        "os",
        "Get-ItemProperty -Path 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion' | "
        "Select-Object ProductName, EditionID, DisplayVersion, ReleaseId, CurrentBuild, UBR | ConvertTo-Json",
        "diagnostics.parsers.windows:parse_os_version",
    ),
    ProbeSpec(
        "os.hotfixes",
        "hotfixes",
        "@(Get-HotFix | Select-Object HotFixID, Description, "
        "@{Name='InstalledOn'; Expression={ if ($_.InstalledOn) { $_.InstalledOn.ToString('yyyy-MM-dd') } }}) "
        "| ConvertTo-Json",
        "diagnostics.parsers.windows:parse_hotfixes",
    ),
    ProbeSpec(
        "hns.networks",
        "hns_networks",
        "Get-HnsNetwork | ConvertTo-Json -Depth 8",
        "diagnostics.parsers.hns:parse_networks",
    ),
    ProbeSpec(
        "hns.endpoints",
        "hns_endpoints",
        "Get-HnsEndpoint | ConvertTo-Json -Depth 8",
        "diagnostics.parsers.hns:parse_endpoints",
    ),
    ProbeSpec(
        "hns.policies",
        "hns_policies",
        # HCN load balancers where hns.v2 is available, else the v1 policy lists.
        "if (Get-Command Get-HnsLoadBalancer -ErrorAction SilentlyContinue) "
        "{ Get-HnsLoadBalancer | ConvertTo-Json -Depth 8 } else { Get-HnsPolicyList | ConvertTo-Json -Depth 8 }",
        "diagnostics.parsers.hns:parse_policies",
    ),
    ProbeSpec(
        "hns.events",
        "hns_events",
        "@(Get-WinEvent -FilterHashtable @{LogName='Microsoft-Windows-Host-Network-Service-Admin'; "
        "StartTime=(Get-Date).AddDays(-7)} -MaxEvents 50 -ErrorAction SilentlyContinue) + "
        "@(Get-WinEvent -FilterHashtable @{LogName='System'; ProviderName='Service Control Manager'; "
        "Id=7031,7034; StartTime=(Get-Date).AddDays(-7)} -MaxEvents 50 -ErrorAction SilentlyContinue "
        "| Where-Object { $_.Message -match 'Host Network Service' }) "
        "| Select-Object @{Name='TimeCreated'; Expression={ $_.TimeCreated.ToUniversalTime().ToString('o') }}, "
        "LevelDisplayName, Id, Message | ConvertTo-Json",
        "diagnostics.parsers.windows:parse_hns_events",
    ),
    ProbeSpec(
        "net.adapters",
        "adapters",
        "Get-NetAdapter | Select-Object Name, InterfaceDescription, ifIndex, Status, MacAddress, LinkSpeed "
        "| ConvertTo-Json",
        "diagnostics.parsers.windows:parse_adapters",
    ),
    ProbeSpec(
        "net.ipconfig",
        "ip_config",
        "ipconfig /all",
        "diagnostics.parsers.windows:parse_ipconfig",
    ),
    ProbeSpec(
        "services",
        "services",
        f"$names = @({_SERVICES}); "
        "Get-CimInstance Win32_Service | Where-Object { $names -contains $_.Name } | ForEach-Object { "
        '$p = Get-ItemProperty -Path "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\$($_.Name)\\Parameters" '
        "-ErrorAction SilentlyContinue; "
        "[pscustomobject]@{Name=$_.Name; DisplayName=$_.DisplayName; State=$_.State; StartMode=$_.StartMode; "
        "PathName=$_.PathName; Application=$p.Application; AppParameters=$p.AppParameters} } | ConvertTo-Json",
        "diagnostics.parsers.windows:parse_services",
    ),
    ProbeSpec(
        "processes",
        "processes",
        f"$names = @({_PROCESSES}); "
        "Get-CimInstance Win32_Process | Where-Object { $names -contains $_.Name } "
        "| Select-Object Name, ProcessId, CommandLine | ConvertTo-Json",
        "diagnostics.parsers.windows:parse_processes",
    ),
    ProbeSpec(
        "env.machine",
        "machine_env",
        "[Environment]::GetEnvironmentVariables('Machine') | ConvertTo-Json",
        "diagnostics.parsers.windows:parse_machine_env",
    ),
    ProbeSpec(
        "computer.info",
        "computer",
        "Get-CimInstance Win32_ComputerSystem | Select-Object Manufacturer, Model, HypervisorPresent | ConvertTo-Json",
        "diagnostics.parsers.windows:parse_computer_info",
    ),
    ProbeSpec(
        "bitlocker",
        "bitlocker",
        # The BitLocker module is absent unless the feature is installed: report no volumes then.
        "if (Get-Command Get-BitLockerVolume -ErrorAction SilentlyContinue) { @(Get-BitLockerVolume "
        "| Select-Object MountPoint, @{Name='ProtectionStatus'; Expression={ \"$($_.ProtectionStatus)\" }}, "
        "@{Name='VolumeStatus'; Expression={ \"$($_.VolumeStatus)\" }}) | ConvertTo-Json } else { '[]' }",
        "diagnostics.parsers.windows:parse_bitlocker",
    ),
    ProbeSpec(
        "images",
        "images",
        "crictl images -o json",
        "diagnostics.parsers.runtime:parse_images",
    ),
    ProbeSpec(
        "ports.dynamic",
        "dynamic_ports",
        "netsh int ipv4 show dynamicport tcp",
        "diagnostics.parsers.windows:parse_dynamic_port_range",
    ),
    ProbeSpec(
        "ports.excluded",
        "excluded_ports",
        "netsh int ipv4 show excludedportrange protocol=tcp",
        "diagnostics.parsers.windows:parse_excluded_port_ranges",
    ),
)

PROBES_BY_ID: dict[str, ProbeSpec] = {p.id: p for p in PROBES}
