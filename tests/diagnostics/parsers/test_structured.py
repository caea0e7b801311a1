"""The structured cmdlets' JSON (any display language) and netsh tables read by position."""

from __future__ import annotations

from pathlib import Path

import pytest

from diagnostics.facts import PortRange
from diagnostics.parsers.netcim import parse_ip_addresses, parse_ip_interfaces, parse_routes
from diagnostics.parsers.windows import (
    parse_dynamic_port_range,
    parse_excluded_port_ranges,
    parse_ipconfig,
    parse_udp_excluded_port_ranges,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "powershell" / "structured"
EXCLUDED = (PortRange(5357, 1), PortRange(9800, 1), PortRange(49671, 100), PortRange(50000, 60))


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name", ["netsh-excluded-en.txt", "netsh-excluded-de.txt"])
def test_excluded_port_ranges_read_the_same_in_english_and_german(name: str) -> None:
    assert parse_excluded_port_ranges(read(name)) == EXCLUDED


def test_the_udp_table_is_read_by_the_same_rules() -> None:
    udp = read("netsh-excluded-en.txt").replace(b"Protocol tcp", b"Protocol udp")
    assert parse_udp_excluded_port_ranges(udp) == EXCLUDED


def test_a_french_dynamic_port_range_is_read_by_position() -> None:
    assert parse_dynamic_port_range(read("netsh-dynamicport-fr.txt")) == PortRange(49152, 16384)


def test_get_nettcpsetting_gives_the_range_of_the_internet_template() -> None:
    assert parse_dynamic_port_range(read("tcp-settings.json")) == PortRange(10000, 55535)


def test_get_netipconfiguration_json_gives_the_same_interfaces_as_ipconfig() -> None:
    host, pod = parse_ipconfig(read("ip-configuration.json"))
    assert (host.name, host.ipv4, host.gateways) == ("vEthernet (Ethernet)", ("10.0.0.15",), ("10.0.0.1",))
    assert host.dns_servers == ("10.0.0.2", "168.63.129.16") and host.mac == "00-15-5D-0A-01-0F"
    assert (pod.name, pod.ipv4, pod.gateways) == ("vEthernet (cbr0_ep)", ("10.244.2.2",), ())


def test_addresses_of_every_compartment_with_families_as_names_or_numbers() -> None:
    addresses = parse_ip_addresses(read("ip-addresses.json"))
    assert [(a.address, a.prefix_length, a.family) for a in addresses] == [
        ("10.0.0.15", 24, "IPv4"),
        ("fe80::d1c2:3b4a:5e6f:7081%12", 64, "IPv6"),
        ("10.244.2.2", 24, "IPv4"),
    ]


def test_routes_keep_next_hop_metric_and_compartment() -> None:
    default, remote, local = parse_routes(read("routes.json"))
    assert (default.destination, default.next_hop, default.metric, default.compartment) == (
        "0.0.0.0/0",
        "10.0.0.1",
        0,
        1,
    )
    assert (remote.destination, remote.next_hop) == ("10.244.1.0/24", "10.0.0.14")
    assert local.interface == "vEthernet (cbr0_ep)"


def test_interfaces_give_the_mtu_per_family() -> None:
    host, pod = parse_ip_interfaces(read("ip-interfaces.json"))
    assert (host.interface, host.family, host.mtu, host.connected) == ("vEthernet (Ethernet)", "IPv4", 1500, True)
    assert (pod.family, pod.mtu, pod.connected) == ("IPv4", 1450, True)


@pytest.mark.parametrize("parser", [parse_ip_addresses, parse_routes, parse_ip_interfaces])
def test_no_objects_is_an_empty_answer_and_garbage_is_an_error(parser) -> None:
    assert parser("[]") == ()
    with pytest.raises(ValueError):
        parser('[{"Unrelated": 1}]')
