"""HNS networks, endpoints and load balancers, from either schema.

v1 is what ``hns.psm1`` (``Get-HnsNetwork``, ``Get-HnsEndpoint``,
``Get-HnsPolicyList``) returns on older nodes; v2 is HCN (``hns.v2.psm1``,
hcsshim's ``hcn`` package): ``Ipams[].Subnets[].IpAddressPrefix``,
``IpConfigurations``, ``Flags`` and load balancers with ``FrontendVIPs`` and
``PortMappings`` whose protocols are IANA numbers (6 TCP, 17 UDP).

Each parser accepts ``ConvertTo-Json`` output (alone, or after the table
``collectlogs.ps1`` writes first), ``Format-List`` output, and for networks
the bare ``Select Name, Type, Id, AddressPrefix`` table. Empty output means no
objects. Anything else raises ``ValueError``.
"""

from __future__ import annotations

import json
from typing import Any

from diagnostics.facts import HnsEndpoint, HnsLoadBalancer, HnsNamespace, HnsNetwork, HnsPortMapping, HnsSubnet
from diagnostics.parsers.powershell import (
    as_bool,
    as_int,
    as_list,
    as_str,
    get,
    parse_hashtable,
    records,
)

PROTOCOLS = {0: "ANY", 1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6"}
EndpointFlagsRemote = 1  # hcn.EndpointFlagsRemoteEndpoint
LoadBalancerFlagsDSR = 1  # hcn.LoadBalancerFlagsDSR


def _objects(text: str | bytes, what: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    try:
        objs = records(text)
    except ValueError as exc:
        raise ValueError(f"cannot read HNS {what}: {exc}") from None
    objs = [o for o in objs if any(get(o, k) is not None for k in required)]
    if not objs and _nonempty(text):
        raise ValueError(f"cannot read HNS {what}: no object has any of {', '.join(required)}")
    return objs


def _nonempty(text: str | bytes) -> bool:
    if isinstance(text, bytes | bytearray):
        return bool(bytes(text).strip(b"\x00\r\n\t \xff\xfe\xef\xbb\xbf"))
    return bool(str(text).strip())


def _nested(value: Any) -> Any:
    """A nested value as JSON gives it, or as ``Format-List`` prints it (``@{..}`` / ``{@{..}, @{..}}``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("@{"):
            return parse_hashtable(text)
        if text.startswith("{"):
            return [_nested(item) for item in as_list(text)]
    return value


def _dicts(value: Any) -> list[dict[str, Any]]:
    value = _nested(value)
    return [v for v in as_list(value) if isinstance(v, dict)] if not isinstance(value, dict) else [value]


def _policy_setting(policies: Any, policy_type: str, *keys: str) -> Any:
    """A setting of the first policy of ``policy_type`` (v2 keeps it under ``Settings``, v1 flat)."""
    for policy in _dicts(policies):
        if str(get(policy, "Type", default="")).lower() != policy_type.lower():
            continue
        settings = get(policy, "Settings")
        if isinstance(settings, str) and settings.strip().startswith("{"):
            try:
                settings = json.loads(settings)
            except ValueError:
                settings = None
        for source in (settings, policy):
            if isinstance(source, dict):
                found = get(source, *keys)
                if found is not None:
                    return found
    return None


# -- networks ----------------------------------------------------------------


def parse_networks(text: str | bytes) -> tuple[HnsNetwork, ...]:
    """``Get-HnsNetwork`` (v1 or v2) -> networks, in output order."""
    return tuple(_network(o) for o in _objects(text, "networks", ("Name", "ID", "Type")))


def _network(obj: dict[str, Any]) -> HnsNetwork:
    ipams = _dicts(get(obj, "Ipams"))
    schema = 2 if ipams or get(obj, "SchemaVersion") is not None else 1
    subnets: list[HnsSubnet] = []
    vni: Any = None
    if schema == 2:
        for ipam in ipams:
            for sub in _dicts(get(ipam, "Subnets")):
                gateway = ""
                for route in _dicts(get(sub, "Routes")):
                    if as_str(get(route, "DestinationPrefix")) in ("0.0.0.0/0", "") and get(route, "NextHop"):
                        gateway = as_str(get(route, "NextHop"))
                subnets.append(HnsSubnet(as_str(get(sub, "IpAddressPrefix")), gateway))
                vni = vni if vni is not None else _policy_setting(get(sub, "Policies"), "VSID", "IsolationId", "VSID")
    else:
        for sub in _dicts(get(obj, "Subnets")):
            subnets.append(HnsSubnet(as_str(get(sub, "AddressPrefix")), as_str(get(sub, "GatewayAddress"))))
            vni = vni if vni is not None else _policy_setting(get(sub, "Policies"), "VSID", "VSID", "IsolationId")
        if not subnets:
            # The collectlogs table: "AddressPrefix" column, e.g. {10.244.1.0/24}.
            subnets = [HnsSubnet(p) for p in as_list(get(obj, "AddressPrefix")) if isinstance(p, str) and p]
    policies = get(obj, "Policies")
    management_ip = as_str(get(obj, "ManagementIP", "ManagementIp"))
    if not management_ip:
        management_ip = as_str(_policy_setting(policies, "ProviderAddress", "ProviderAddress", "PA"))
    adapter = as_str(get(obj, "NetworkAdapterName"))
    if not adapter:
        adapter = as_str(_policy_setting(policies, "NetAdapterName", "NetworkAdapterName"))
    port = _policy_setting(policies, "VxlanPort", "Port", "VxlanPort")
    return HnsNetwork(
        id=as_str(get(obj, "ID", "Id")).lower(),
        name=as_str(get(obj, "Name")),
        type=as_str(get(obj, "Type")).lower(),
        subnets=tuple(subnets),
        management_ip=management_ip,
        adapter_name=adapter,
        schema=schema,
        vxlan_vni=as_int(vni),
        vxlan_port=as_int(port),
    )


# -- endpoints ---------------------------------------------------------------


def parse_endpoints(text: str | bytes) -> tuple[HnsEndpoint, ...]:
    """``Get-HnsEndpoint`` (v1 or v2) -> endpoints; v2 ``Flags & 1`` marks a remote endpoint."""
    return tuple(_endpoint(o) for o in _objects(text, "endpoints", ("ID", "IPAddress", "IpConfigurations", "Name")))


def _endpoint(obj: dict[str, Any]) -> HnsEndpoint:
    configs = _dicts(get(obj, "IpConfigurations"))
    if configs or get(obj, "HostComputeNetwork") is not None:
        ip = next((as_str(get(c, "IpAddress")) for c in configs if get(c, "IpAddress")), "")
        flags = as_int(get(obj, "Flags")) or 0
        is_remote = bool(flags & EndpointFlagsRemote)
        network = as_str(get(obj, "HostComputeNetwork"))
        namespace = as_str(get(obj, "HostComputeNamespace"))
    else:
        ip = as_str(get(obj, "IPAddress", "IpAddress"))
        is_remote = as_bool(get(obj, "IsRemoteEndpoint", default=False))
        network = as_str(get(obj, "VirtualNetwork")) or as_str(get(obj, "VirtualNetworkName"))
        ns = _nested(get(obj, "Namespace"))
        namespace = as_str(get(ns, "ID", "Id")) if isinstance(ns, dict) else as_str(ns)
    return HnsEndpoint(
        id=as_str(get(obj, "ID", "Id")).lower(),
        name=as_str(get(obj, "Name")),
        ip=ip,
        network=network.lower() if _is_guid(network) else network,
        state=as_str(get(obj, "State")),
        is_remote=is_remote,
        mac=as_str(get(obj, "MacAddress")),
        namespace=namespace.lower(),
    )


def _is_guid(value: str) -> bool:
    return len(value) == 36 and value.count("-") == 4


# -- load balancers / policy lists ---------------------------------------------


def parse_policies(text: str | bytes) -> tuple[HnsLoadBalancer, ...]:
    """``Get-HnsLoadBalancer`` (v2) or ``Get-HnsPolicyList`` (v1, ELB policies) -> load balancers."""
    objs = _objects(text, "policies", ("ID", "FrontendVIPs", "PortMappings", "Policies", "References"))
    return tuple(_load_balancer(o) for o in objs)


def _protocol(value: Any) -> str:
    number = as_int(value)
    if number is not None:
        return PROTOCOLS.get(number, str(number))
    return as_str(value).upper()


def _load_balancer(obj: dict[str, Any]) -> HnsLoadBalancer:
    lb_id = as_str(get(obj, "ID", "Id")).lower()
    if get(obj, "PortMappings") is not None or get(obj, "FrontendVIPs") is not None:
        ports = tuple(
            HnsPortMapping(
                _protocol(get(m, "Protocol")),
                as_int(get(m, "InternalPort")) or 0,
                as_int(get(m, "ExternalPort")) or 0,
            )
            for m in _dicts(get(obj, "PortMappings"))
        )
        flags = as_int(get(obj, "Flags")) or 0
        return HnsLoadBalancer(
            id=lb_id,
            vips=tuple(as_str(v) for v in as_list(_nested(get(obj, "FrontendVIPs"))) if v),
            ports=ports,
            endpoint_ids=tuple(as_str(e).lower() for e in as_list(_nested(get(obj, "HostComputeEndpoints"))) if e),
            source_vip=as_str(get(obj, "SourceVIP")),
            dsr=bool(flags & LoadBalancerFlagsDSR),
        )
    # v1 policy list: ELB policies, endpoints as "/endpoints/<id>" references.
    elbs = [p for p in _dicts(get(obj, "Policies")) if str(get(p, "Type", default="")).upper() == "ELB"]
    vips: list[str] = []
    ports_v1: list[HnsPortMapping] = []
    source_vip = ""
    dsr = False
    for elb in elbs:
        vips.extend(as_str(v) for v in as_list(_nested(get(elb, "VIPs"))) if v and as_str(v) not in vips)
        ports_v1.append(
            HnsPortMapping(
                _protocol(get(elb, "Protocol")),
                as_int(get(elb, "InternalPort")) or 0,
                as_int(get(elb, "ExternalPort")) or 0,
            )
        )
        source_vip = source_vip or as_str(get(elb, "SourceVIP"))
        dsr = dsr or as_bool(get(elb, "IsDSR", default=False))
    refs = [as_str(r) for r in as_list(_nested(get(obj, "References"))) if r]
    applied = get(obj, "IsApplied")
    return HnsLoadBalancer(
        id=lb_id,
        vips=tuple(vips),
        ports=tuple(ports_v1),
        endpoint_ids=tuple(r.rsplit("/", 1)[-1].lower() for r in refs),
        source_vip=source_vip,
        dsr=dsr,
        applied=True if applied is None else as_bool(applied),
    )


def parse_namespaces(text: str | bytes) -> tuple[HnsNamespace, ...]:
    """HNS namespaces (``Get-HnsNamespace`` v1 or v2 JSON, or ``hnsdiag list namespaces -d``).

    v1 lists endpoints under ``ResourceList[].Data.Id`` with ``CompartmentId``; v2 under
    ``Resources[].Data.Id`` with ``NamespaceId`` (collectlogs.ps1 reads both the same way).
    """
    out = []
    for obj in _objects(text, "namespaces", ("ID", "Id")):
        endpoints = []
        for resource in _dicts(get(obj, "ResourceList")) + _dicts(get(obj, "Resources")):
            data = _nested(get(resource, "Data"))
            if isinstance(data, dict) and get(data, "Id", "ID"):
                endpoints.append(as_str(get(data, "Id", "ID")).lower())
        out.append(
            HnsNamespace(
                id=as_str(get(obj, "ID", "Id")).lower(),
                compartment=as_int(get(obj, "CompartmentId", "NamespaceId")),
                endpoint_ids=tuple(endpoints),
            )
        )
    return tuple(out)


def parse_hnsdiag(text: str | bytes) -> str:
    """``hnsdiag list all``: kept as text (evidence for people; the checks read the JSON probes)."""
    if isinstance(text, bytes | bytearray):
        return bytes(text).decode("utf-8", errors="replace")
    return str(text)
