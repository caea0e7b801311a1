"""The structured networking cmdlets (``Get-NetIPAddress``, ``Get-NetRoute``, ``Get-NetIPInterface``).

Their JSON is the same on every display language, unlike ``ipconfig``,
``route print`` or ``netsh`` text. Enumerations come either as numbers
(CIM serialization: ``AddressFamily`` 2 / 23, ``ConnectionState`` 0 / 1) or as
names when the probe formats them (``"IPv4"``, ``"Connected"``); both are read.
``Format-List`` and table output (``collectlogs.ps1``'s ``ip.txt``, ``routes.txt``)
are read too. Empty output means no objects; anything else unreadable raises
``ValueError``.
"""

from __future__ import annotations

from typing import Any

from diagnostics.facts import IpAddress, NetInterface, Route
from diagnostics.parsers.powershell import as_int, as_str, get, records

_FAMILIES = {"2": "IPv4", "23": "IPv6", "ipv4": "IPv4", "ipv6": "IPv6"}


def family(value: Any) -> str:
    text = as_str(value).strip()
    return _FAMILIES.get(text.lower(), text)


def _objects(text: str | bytes, what: str, required: str) -> list[dict[str, Any]]:
    try:
        objs = records(text)
    except ValueError as exc:
        raise ValueError(f"cannot read {what}: {exc}") from None
    kept = [o for o in objs if get(o, required) not in (None, "")]
    if objs and not kept:
        raise ValueError(f"cannot read {what}: no object has {required}")
    return kept


def parse_ip_addresses(text: str | bytes) -> tuple[IpAddress, ...]:
    """``Get-NetIPAddress -IncludeAllCompartments | Select InterfaceAlias, InterfaceIndex, IPAddress, ...``."""
    return tuple(
        IpAddress(
            interface=as_str(get(o, "InterfaceAlias")),
            index=as_int(get(o, "InterfaceIndex", "ifIndex")) or 0,
            address=as_str(get(o, "IPAddress")),
            prefix_length=as_int(get(o, "PrefixLength")) or 0,
            family=family(get(o, "AddressFamily")) or ("IPv6" if ":" in as_str(get(o, "IPAddress")) else "IPv4"),
        )
        for o in _objects(text, "IP addresses", "IPAddress")
    )


def parse_routes(text: str | bytes) -> tuple[Route, ...]:
    """``Get-NetRoute -IncludeAllCompartments | Select DestinationPrefix, NextHop, InterfaceAlias, ...``."""
    return tuple(
        Route(
            destination=as_str(get(o, "DestinationPrefix")),
            next_hop=as_str(get(o, "NextHop")),
            interface=as_str(get(o, "InterfaceAlias")),
            index=as_int(get(o, "InterfaceIndex", "ifIndex")) or 0,
            metric=as_int(get(o, "RouteMetric")),
            compartment=as_int(get(o, "CompartmentId")),
        )
        for o in _objects(text, "routes", "DestinationPrefix")
    )


def parse_ip_interfaces(text: str | bytes) -> tuple[NetInterface, ...]:
    """``Get-NetIPInterface -IncludeAllCompartments | Select InterfaceAlias, ..., NlMtu, ConnectionState``."""
    out = []
    for o in _objects(text, "IP interfaces", "InterfaceAlias"):
        state = as_str(get(o, "ConnectionState")).strip().lower()
        out.append(
            NetInterface(
                interface=as_str(get(o, "InterfaceAlias")),
                index=as_int(get(o, "InterfaceIndex", "ifIndex")) or 0,
                family=family(get(o, "AddressFamily")),
                mtu=as_int(get(o, "NlMtu", "NlMtu(Bytes)")),
                connected={"1": True, "connected": True, "0": False, "disconnected": False}.get(state),
                compartment=as_int(get(o, "CompartmentId")),
            )
        )
    return tuple(out)
