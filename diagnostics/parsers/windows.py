"""Windows host facts: OS build, hotfixes, adapters, IP configuration, services,
processes, machine environment, computer model, BitLocker, port ranges, HNS events.

Each parser reads the probe's own output (JSON where PowerShell can give it)
and the text people collect by hand (tables, lists, ``ipconfig``, ``sc.exe``,
``netsh``). English output only for the tools that localize (ipconfig, netsh,
sc.exe). Unreadable output raises ``ValueError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from diagnostics.facts import (
    BitLocker,
    ComputerInfo,
    HnsEvent,
    HotFix,
    IpInterface,
    NetAdapter,
    OsInfo,
    PortRange,
    Process,
    Service,
)
from diagnostics.parsers.powershell import (
    _is_underline,
    as_bool,
    as_int,
    as_list,
    as_str,
    get,
    is_json,
    parse_json_values,
    parse_list,
    parse_tables,
    records,
    to_text,
)

_VERSION_RE = re.compile(r"\b10\.0\.(\d{4,5})(?:\.(\d+))?\b")


def _records(text: str | bytes, what: str) -> list[dict[str, Any]]:
    try:
        return records(text)
    except ValueError as exc:
        raise ValueError(f"cannot read {what}: {exc}") from None


# -- OS ----------------------------------------------------------------------


def parse_os_version(text: str | bytes) -> OsInfo:
    """The OS build from the registry's ``CurrentVersion`` (JSON or list) or ``[Environment]::OSVersion``.

    ``[Environment]::OSVersion`` always reports revision 0, so it gives no UBR.
    """
    text = to_text(text)
    objs: list[dict[str, Any]] = []
    if is_json(text):
        objs = parse_json_values(text)
    else:
        try:
            objs = parse_list(text)
        except ValueError:
            objs = []
    for obj in objs:
        build = as_int(get(obj, "CurrentBuild", "CurrentBuildNumber", "BuildNumber"))
        if build is None:
            continue
        return OsInfo(
            build=build,
            ubr=as_int(get(obj, "UBR")),
            edition=as_str(get(obj, "EditionID", "EditionId")),
            product_name=as_str(get(obj, "ProductName", "Caption")),
            display_version=as_str(get(obj, "DisplayVersion")) or as_str(get(obj, "ReleaseId")),
        )
    m = _VERSION_RE.search(text)
    if m:
        ubr = int(m.group(2)) if m.group(2) and int(m.group(2)) != 0 else None
        return OsInfo(build=int(m.group(1)), ubr=ubr)
    raise ValueError("cannot read the OS version: no CurrentBuild and no '10.0.<build>' in the output")


def parse_hotfixes(text: str | bytes) -> tuple[HotFix, ...]:
    """``Get-HotFix`` as JSON or as its table (also after the version line of collectlogs' winver.txt)."""
    text = to_text(text)
    if not text.strip() or "<No hotfix>" in text:
        return ()
    if is_json(text):
        objs = parse_json_values(text)
    else:
        tables = parse_tables(text)
        objs = [row for table in tables for row in table]
        if not tables:
            objs = _records(text, "hotfixes")
    fixes = []
    for obj in objs:
        fix_id = as_str(get(obj, "HotFixID", "HotFixId"))
        if fix_id:
            fixes.append(HotFix(fix_id.upper(), _date(get(obj, "InstalledOn"))))
    if objs and not fixes:
        raise ValueError("cannot read hotfixes: no HotFixID column or key")
    return tuple(fixes)


def _date(value: Any) -> str:
    if isinstance(value, dict) and "DateTime" in value and "value" not in value:
        return as_str(value["DateTime"])
    return as_str(value)


# -- network -----------------------------------------------------------------


def parse_adapters(text: str | bytes) -> tuple[NetAdapter, ...]:
    """``Get-NetAdapter`` as its table, or JSON of Name, InterfaceDescription, ifIndex, Status, MacAddress, LinkSpeed"""
    objs = _records(text, "network adapters")
    adapters = []
    for obj in objs:
        name = as_str(get(obj, "Name"))
        if not name:
            continue
        adapters.append(
            NetAdapter(
                name=name,
                description=as_str(get(obj, "InterfaceDescription")),
                if_index=as_int(get(obj, "ifIndex", "InterfaceIndex")),
                status=_adapter_status(get(obj, "Status")),
                mac=as_str(get(obj, "MacAddress")),
                link_speed=as_str(get(obj, "LinkSpeed")),
            )
        )
    if objs and not adapters:
        raise ValueError("cannot read network adapters: no Name column or key")
    return tuple(adapters)


def _adapter_status(value: Any) -> str:
    # Older CIM serializations give MSFT_NetAdapter's InterfaceOperationalStatus number.
    number = as_int(value)
    if number is not None and not isinstance(value, str):
        return {1: "Up", 2: "Down", 5: "Not Present", 7: "Disconnected"}.get(number, str(number))
    return as_str(value)


_IPCONFIG_HEADER = re.compile(r"^(\S.*?) adapter (.+?):\s*$")
_IPCONFIG_LINE = re.compile(r"^\s+([^.:]+?)[ .]*: ?(.*)$")
_ADDRESS = re.compile(r"^([0-9A-Fa-f:.%]+?)(?:\((?:Preferred|Deprecated|Tentative|Duplicate)\))?$")


def parse_ipconfig(text: str | bytes) -> tuple[IpInterface, ...]:
    """One ``IpInterface`` per adapter: the agent's ``Get-NetIPConfiguration`` JSON (any display language),
    or ``ipconfig /all`` (also ``/allcompartments``) text as people collect it, in English."""
    text = to_text(text)
    if not text.strip():
        return ()
    if is_json(text):
        return _ip_configuration(parse_json_values(text))
    interfaces: list[IpInterface] = []
    current: dict[str, Any] | None = None
    last_key = ""
    saw_header = False
    for line in text.split("\n"):
        if "Windows IP Configuration" in line:
            saw_header = True
        header = _IPCONFIG_HEADER.match(line)
        if header:
            if current is not None:
                interfaces.append(_interface(current))
            current = {"name": header.group(2).strip(), "ipv4": [], "ipv6": [], "gateways": [], "dns": []}
            last_key = ""
            continue
        if current is None or not line.strip():
            continue
        m = _IPCONFIG_LINE.match(line)
        if m and " : " in line + " ":
            last_key = m.group(1).strip().lower()
            _ipconfig_value(current, last_key, m.group(2).strip())
        elif line.startswith(" ") and last_key:
            _ipconfig_value(current, last_key, line.strip())  # continuation: more gateways / DNS servers
    if current is not None:
        interfaces.append(_interface(current))
    if not interfaces and not saw_header:
        raise ValueError("cannot read ipconfig output: no 'Windows IP Configuration' and no adapter blocks")
    return tuple(interfaces)


def _ip_configuration(objs: list[dict[str, Any]]) -> tuple[IpInterface, ...]:
    """``Get-NetIPConfiguration -AllCompartments -Detailed`` as the probe projects it (addresses as strings)."""
    interfaces = []
    for obj in objs:
        name = as_str(get(obj, "InterfaceAlias"))
        if not name:
            continue

        def strings(key: str, obj: dict[str, Any] = obj) -> tuple[str, ...]:
            return tuple(as_str(v) for v in as_list(get(obj, key)) if as_str(v))

        interfaces.append(
            IpInterface(
                name=name,
                description=as_str(get(obj, "InterfaceDescription")),
                ipv4=strings("IPv4Address"),
                ipv6=strings("IPv6Address"),
                mac=as_str(get(obj, "MacAddress")),
                gateways=strings("IPv4DefaultGateway"),
                dns_servers=strings("DNSServer"),
            )
        )
    if objs and not interfaces:
        raise ValueError("cannot read the IP configuration: no object has an InterfaceAlias")
    return tuple(interfaces)


def _ipconfig_value(block: dict[str, Any], key: str, value: str) -> None:
    if not value:
        return
    address = _ADDRESS.match(value)
    addr = address.group(1) if address else value
    if key == "description":
        block["description"] = value
    elif key == "physical address":
        block["mac"] = value
    elif key.startswith("ipv4 address") or key == "autoconfiguration ipv4 address":
        block["ipv4"].append(addr)
    elif key.startswith(("ipv6 address", "link-local ipv6 address", "temporary ipv6 address")):
        block["ipv6"].append(addr)
    elif key == "default gateway":
        block["gateways"].append(addr)
    elif key == "dns servers":
        block["dns"].append(addr)
    elif key == "connection-specific dns suffix":
        block["suffix"] = value


def _interface(block: dict[str, Any]) -> IpInterface:
    return IpInterface(
        name=block["name"],
        description=block.get("description", ""),
        ipv4=tuple(block["ipv4"]),
        ipv6=tuple(block["ipv6"]),
        mac=block.get("mac", ""),
        gateways=tuple(block["gateways"]),
        dns_servers=tuple(block["dns"]),
        dns_suffix=block.get("suffix", ""),
    )


# -- services and processes --------------------------------------------------

_START_MODES = {"auto": "Automatic", "manual": "Manual", "disabled": "Disabled", "boot": "Boot", "system": "System"}
_SC_STATES = {
    "RUNNING": "Running",
    "STOPPED": "Stopped",
    "START_PENDING": "StartPending",
    "STOP_PENDING": "StopPending",
    "PAUSED": "Paused",
}
_SC_START = {"AUTO_START": "Automatic", "DEMAND_START": "Manual", "DISABLED": "Disabled"}
_SC_FIELD = re.compile(r"^\s*([A-Z_0-9]+)\s*: ?(.*)$")
# ServiceController.Status / StartType enum numbers, as Windows PowerShell 5.1 serializes them.
_STATUS_NUMBERS = {1: "Stopped", 2: "StartPending", 3: "StopPending", 4: "Running", 7: "Paused"}
_START_NUMBERS = {0: "Boot", 1: "System", 2: "Automatic", 3: "Manual", 4: "Disabled"}


def parse_services(text: str | bytes) -> tuple[Service, ...]:
    """Services from ``Get-Service`` (table/JSON), ``Win32_Service`` JSON or ``sc.exe qc``/``queryex`` text.

    For services run by nssm, ``PathName`` is nssm.exe; the probe adds the
    service's ``Parameters`` registry key (``Application``, ``AppParameters``),
    and ``command_line`` becomes the real component command line
    (``"<Application>" <AppParameters>``).
    """
    text = to_text(text)
    if not text.strip():
        return ()
    if "SERVICE_NAME:" in text and not is_json(text):
        return _sc_services(text)
    objs = _records(text, "services")
    services = []
    for obj in objs:
        name = as_str(get(obj, "Name", "ServiceName"))
        if not name:
            continue
        status = get(obj, "State", "Status")
        start = get(obj, "StartMode", "StartType")
        services.append(
            Service(
                name=name,
                status=_STATUS_NUMBERS.get(status, "") if isinstance(status, int) else as_str(status),
                start_type=_START_NUMBERS.get(start, "")
                if isinstance(start, int)
                else _START_MODES.get(as_str(start).lower(), as_str(start)),
                command_line=_command_line(
                    as_str(get(obj, "PathName", "BinaryPathName")),
                    as_str(get(obj, "Application")),
                    as_str(get(obj, "AppParameters")),
                ),
                display_name=as_str(get(obj, "DisplayName")),
            )
        )
    if objs and not services:
        raise ValueError("cannot read services: no Name column or key")
    return tuple(services)


def _command_line(path: str, application: str, parameters: str) -> str:
    if application and (not path or "nssm" in path.lower()):
        app = f'"{application}"' if " " in application and not application.startswith('"') else application
        return f"{app} {parameters}".strip()
    return f"{path} {parameters}".strip() if parameters and parameters not in path else path


def _sc_services(text: str) -> tuple[Service, ...]:
    """``sc.exe qc`` and ``sc.exe queryex`` blocks, merged by service name."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.split("\n"):
        m = _SC_FIELD.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2).strip()
        if key == "SERVICE_NAME":
            current = found.setdefault(value.lower(), {"name": value})
        elif current is not None:
            current[key] = value
    services = []
    for block in found.values():
        state = block.get("STATE", "").split()
        start = block.get("START_TYPE", "").split()
        services.append(
            Service(
                name=block["name"],
                status=_SC_STATES.get(state[-1], state[-1].title()) if state else "",
                start_type=_SC_START.get(start[-1], start[-1].title()) if start else "",
                command_line=block.get("BINARY_PATH_NAME", ""),
                display_name=block.get("DISPLAY_NAME", ""),
            )
        )
    return tuple(services)


def parse_processes(text: str | bytes) -> tuple[Process, ...]:
    """``Win32_Process`` JSON (``Name, ProcessId, CommandLine``); a ``Get-Process`` table gives names only."""
    objs = _records(text, "processes")
    procs = []
    for obj in objs:
        name = as_str(get(obj, "Name", "ProcessName"))
        if not name:
            continue
        procs.append(
            Process(
                name=name,
                pid=as_int(get(obj, "ProcessId", "Id")),
                command_line=as_str(get(obj, "CommandLine")),
            )
        )
    if objs and not procs:
        raise ValueError("cannot read processes: no Name key")
    return tuple(procs)


# -- machine -----------------------------------------------------------------


def parse_machine_env(text: str | bytes) -> Mapping[str, str]:
    """``[Environment]::GetEnvironmentVariables('Machine')`` as JSON (an object) or its ``Name Value`` table."""
    text = to_text(text)
    if not text.strip():
        return {}
    if is_json(text):
        objs = parse_json_values(text)
        env: dict[str, str] = {}
        for obj in objs:
            if set(obj) >= {"Name", "Value"} or set(obj) >= {"Key", "Value"}:
                env[as_str(get(obj, "Name", "Key"))] = as_str(obj.get("Value"))
            else:
                env.update({str(k): as_str(v) for k, v in obj.items()})
        return env
    tables = parse_tables(text)
    rows = [row for table in tables for row in table]
    if not rows:
        raise ValueError("cannot read machine environment: expected JSON or a 'Name  Value' table")
    return {as_str(get(r, "Name", "Key")): as_str(get(r, "Value")) for r in rows if get(r, "Name", "Key")}


def parse_computer_info(text: str | bytes) -> ComputerInfo:
    """``Win32_ComputerSystem`` (``Manufacturer, Model, HypervisorPresent``) as JSON or a list."""
    objs = _records(text, "computer information")
    for obj in objs:
        if get(obj, "Manufacturer") is None and get(obj, "Model") is None:
            continue
        hyper = get(obj, "HypervisorPresent")
        return ComputerInfo(
            manufacturer=as_str(get(obj, "Manufacturer")),
            model=as_str(get(obj, "Model")),
            hypervisor_present=None if hyper in (None, "") else as_bool(hyper),
        )
    raise ValueError("cannot read computer information: no Manufacturer or Model")


_PROTECTION = {0: "Off", 1: "On", 2: "Unknown"}
_VOLUME_STATUS = {
    0: "FullyDecrypted",
    1: "FullyEncrypted",
    2: "EncryptionInProgress",
    3: "DecryptionInProgress",
    4: "EncryptionPaused",
    5: "DecryptionPaused",
}


def parse_bitlocker(text: str | bytes) -> tuple[BitLocker, ...]:
    """``Get-BitLockerVolume`` (``MountPoint, ProtectionStatus, VolumeStatus``) as JSON or a list.

    Enum values arrive as names (the probe converts them) or as the numbers
    Windows PowerShell 5.1 serializes; both are read.
    """
    objs = _records(text, "BitLocker volumes")
    volumes = []
    for obj in objs:
        mount = as_str(get(obj, "MountPoint"))
        if not mount:
            continue
        prot, vol = get(obj, "ProtectionStatus"), get(obj, "VolumeStatus")
        volumes.append(
            BitLocker(
                mount_point=mount,
                protection_status=_PROTECTION.get(prot, str(prot)) if isinstance(prot, int) else as_str(prot),
                volume_status=_VOLUME_STATUS.get(vol, str(vol)) if isinstance(vol, int) else as_str(vol),
            )
        )
    if objs and not volumes:
        raise ValueError("cannot read BitLocker volumes: no MountPoint")
    return tuple(volumes)


# -- ports -------------------------------------------------------------------

# "Protocol tcp Port Exclusion Ranges", "Protokoll tcp Portausschlussbereiche", "Protocole tcp ...":
# the only lines that name the protocol, whatever the language.
_PROTOCOL_BLOCK = re.compile(r"^[^\d\n]*\b(tcp|udp)\b[^\d\n]*$", re.MULTILINE | re.IGNORECASE)


def _protocol_block(text: str, protocol: str) -> str:
    """The part of netsh output about ``protocol`` (collectlogs appends TCP then UDP in one file)."""
    blocks = list(_PROTOCOL_BLOCK.finditer(text))
    if not blocks:
        return text
    for k, m in enumerate(blocks):
        if m.group(1).lower() == protocol:
            end = blocks[k + 1].start() if k + 1 < len(blocks) else len(text)
            return text[m.start() : end]
    return text[blocks[0].start() : blocks[1].start() if len(blocks) > 1 else len(text)]


def parse_dynamic_port_range(text: str | bytes) -> PortRange:
    """The TCP dynamic (ephemeral) range: ``Get-NetTCPSetting`` JSON, or ``netsh int ipv4 show dynamicport tcp``."""
    return _dynamic_range(text, "tcp")


def parse_udp_dynamic_port_range(text: str | bytes) -> PortRange:
    """The UDP dynamic range: ``Get-NetUDPSetting`` JSON, or ``netsh int ipv4 show dynamicport udp``."""
    return _dynamic_range(text, "udp")


_NUMBER_LINE = re.compile(r":\s*(\d+)\s*$")


def _dynamic_range(text: str | bytes, protocol: str) -> PortRange:
    text = to_text(text)
    if is_json(text):
        objs = [o for o in parse_json_values(text) if as_int(get(o, "DynamicPortRangeStartPort"))]
        # Get-NetTCPSetting has one row per setting template; "Internet" is the one in force on servers.
        objs.sort(key=lambda o: as_str(get(o, "SettingName")).lower() != "internet")
        if not objs:
            raise ValueError(f"cannot read the {protocol.upper()} dynamic port range: no DynamicPortRangeStartPort")
        start = as_int(get(objs[0], "DynamicPortRangeStartPort")) or 0
        return PortRange(start, as_int(get(objs[0], "DynamicPortRangeNumberOfPorts")) or 0)
    # netsh text: two "label : number" lines, start then count; the labels are localized, the order is not.
    block = _protocol_block(text, protocol)
    numbers = [int(m.group(1)) for line in block.split("\n") if (m := _NUMBER_LINE.search(line))]
    if len(numbers) < 2:
        raise ValueError(f"cannot read the {protocol.upper()} dynamic port range: expected a start and a count")
    return PortRange(numbers[0], numbers[1])


_RANGE_ROW = re.compile(r"^\s*(\d+)\s+(\d+)(\s+\*)?\s*$")


def parse_excluded_port_ranges(text: str | bytes) -> tuple[PortRange, ...]:
    """``netsh int ipv4 show excludedportrange protocol=tcp`` -> TCP ranges (``*`` = administered)."""
    return _excluded_ranges(text, "tcp")


def parse_udp_excluded_port_ranges(text: str | bytes) -> tuple[PortRange, ...]:
    """``netsh int ipv4 show excludedportrange protocol=udp`` -> UDP ranges."""
    return _excluded_ranges(text, "udp")


def _excluded_ranges(text: str | bytes, protocol: str) -> tuple[PortRange, ...]:
    # The table is read by position (rows of two numbers under a dashed rule), so localized
    # headers ("Startport  Endport", "Port de début  Port de fin") read the same.
    text = to_text(text)
    if not text.strip():
        return ()
    block = _protocol_block(text, protocol)
    if not any(_is_underline(line) for line in block.split("\n")) and "Start Port" not in block:
        raise ValueError("cannot read excluded port ranges: expected a table of start and end ports")
    ranges = []
    for line in block.split("\n"):
        m = _RANGE_ROW.match(line)
        if m:
            first, last = int(m.group(1)), int(m.group(2))
            if last >= first:
                ranges.append(PortRange(first, last - first + 1))
    return tuple(ranges)


# -- events ------------------------------------------------------------------

_LEVELS = {1: "Critical", 2: "Error", 3: "Warning", 4: "Information", 0: "Information", 5: "Verbose"}


def parse_hns_events(text: str | bytes) -> tuple[HnsEvent, ...]:
    """``Get-WinEvent ... | Select TimeCreated, LevelDisplayName, Id, Message | ConvertTo-Json`` (or a list)."""
    objs = _records(text, "HNS events")
    events = []
    for obj in objs:
        message = get(obj, "Message")
        event_id = as_int(get(obj, "Id", "EventID", "InstanceId"))
        if message is None and event_id is None:
            continue
        level = get(obj, "LevelDisplayName")
        if level in (None, ""):
            number = as_int(get(obj, "Level"))
            level = _LEVELS.get(number, "") if number is not None else as_str(get(obj, "EntryType", "Level"))
        events.append(
            HnsEvent(
                time=as_str(get(obj, "TimeCreated", "TimeGenerated")),
                level=as_str(level),
                id=event_id,
                message=as_str(message),
            )
        )
    if objs and not events:
        raise ValueError("cannot read HNS events: no Id or Message")
    return tuple(events)
