from __future__ import annotations

import pytest

from diagnostics.facts import HnsPortMapping, HnsSubnet
from diagnostics.parsers.hns import parse_endpoints, parse_networks, parse_policies


class TestNetworks:
    def test_it_reads_v1_networks(self, fixture_bytes) -> None:
        nat, cbr0 = parse_networks(fixture_bytes("hns-networks-v1.json"))
        assert (nat.name, nat.type) == ("nat", "nat")
        assert cbr0.name == "cbr0"
        assert cbr0.type == "l2bridge"
        assert cbr0.subnets == (HnsSubnet("10.244.1.0/24", "10.244.1.1"),)
        assert cbr0.management_ip == "10.0.1.11"
        assert cbr0.adapter_name == "Ethernet"
        assert cbr0.schema == 1
        assert cbr0.vxlan_vni is None

    def test_it_reads_the_vni_of_a_v1_overlay_network(self, fixture_bytes) -> None:
        [vxlan0] = parse_networks(fixture_bytes("hns-networks-v1-overlay.json"))
        assert (vxlan0.name, vxlan0.type, vxlan0.vxlan_vni) == ("vxlan0", "overlay", 4096)

    def test_it_reads_v2_networks_from_ipams_and_policies(self, fixture_bytes) -> None:
        [cbr0] = parse_networks(fixture_bytes("hns-networks-v2.json"))
        assert cbr0.schema == 2
        assert cbr0.subnets == (HnsSubnet("10.244.1.0/24", "10.244.1.1"),)
        assert cbr0.adapter_name == "Ethernet"
        assert cbr0.management_ip == "10.0.1.11"  # ProviderAddress policy

    def test_it_reads_vsid_and_vxlan_port_of_a_v2_overlay(self, fixture_bytes) -> None:
        [net] = parse_networks(fixture_bytes("hns-networks-v2-overlay.json"))
        assert (net.type, net.vxlan_vni, net.vxlan_port) == ("overlay", 4096, 4789)

    def test_it_reads_the_collectlogs_file_with_a_table_before_the_json(self, fixture_bytes) -> None:
        nets = parse_networks(fixture_bytes("collectlogs-network.txt"))
        assert [n.name for n in nets] == ["nat", "cbr0"]
        assert nets[1].management_ip == "10.0.1.11"

    def test_it_reads_format_list_output(self, fixture_bytes) -> None:
        [cbr0] = parse_networks(fixture_bytes("hns-networks-list.txt"))
        assert cbr0.name == "cbr0"
        assert cbr0.subnets == (HnsSubnet("10.244.1.0/24", "10.244.1.1"),)
        assert cbr0.management_ip == "10.0.1.11"

    def test_it_reads_the_bare_name_type_prefix_table(self, fixture_bytes) -> None:
        nets = parse_networks(fixture_bytes("hns-networks-table.txt"))
        assert [(n.name, n.type) for n in nets] == [("nat", "nat"), ("cbr0", "l2bridge")]
        assert nets[1].subnets == (HnsSubnet("10.244.1.0/24"),)

    def test_empty_output_means_no_networks(self) -> None:
        assert parse_networks("") == ()
        assert parse_networks(b"\xff\xfe\r\x00\n\x00") == ()

    def test_it_raises_value_error_on_unrelated_json(self) -> None:
        with pytest.raises(ValueError, match="HNS networks"):
            parse_networks('{"foo": 1}')


class TestEndpoints:
    def test_it_reads_v1_local_and_remote_endpoints(self, fixture_bytes) -> None:
        eps = parse_endpoints(fixture_bytes("hns-endpoints-v1.json"))
        assert len(eps) == 4
        local = eps[0]
        assert local.ip == "10.244.3.4"
        assert not local.is_remote
        assert local.state == "3"
        assert local.network == eps[3].network
        assert local.namespace
        assert eps[3].is_remote and eps[3].ip == "10.244.9.12"

    def test_it_reads_v2_endpoints_from_ip_configurations(self, fixture_bytes) -> None:
        eps = parse_endpoints(fixture_bytes("hns-endpoints-v2.json"))
        assert [e.ip for e in eps] == ["10.244.1.4", "10.244.1.5", "10.244.1.6"]
        assert not any(e.is_remote for e in eps)
        assert eps[0].network == eps[0].network.lower() and eps[0].mac == "0E-2A-0A-F4-01-04"

    def test_it_marks_v2_endpoints_with_the_remote_flag(self) -> None:
        text = (
            '{"ID": "A", "Name": "r", "HostComputeNetwork": "N", '
            '"IpConfigurations": [{"IpAddress": "10.244.2.9"}], "Flags": 1}'
        )
        [ep] = parse_endpoints(text)
        assert ep.is_remote

    def test_it_reads_the_collectlogs_endpoint_file(self, fixture_bytes) -> None:
        eps = parse_endpoints(fixture_bytes("collectlogs-endpoint.txt"))
        assert [e.is_remote for e in eps] == [False, False, False, True]

    def test_it_keeps_the_complete_endpoints_of_a_truncated_output(self, fixture_bytes) -> None:
        assert len(parse_endpoints(fixture_bytes("hns-endpoints-v2-truncated.json"))) == 2


class TestPolicies:
    def test_it_reads_v2_load_balancers_with_protocol_numbers(self, fixture_bytes) -> None:
        lbs = parse_policies(fixture_bytes("hns-loadbalancers-v2.json"))
        assert len(lbs) == 4
        dns_udp = lbs[0]
        assert dns_udp.vips == ("10.96.0.10",)
        assert dns_udp.ports == (HnsPortMapping("UDP", 53, 53),)
        assert len(dns_udp.endpoint_ids) == 3
        assert dns_udp.source_vip == "10.244.1.2"
        assert lbs[2].ports == (HnsPortMapping("TCP", 6443, 443),)
        assert not any(lb.dsr for lb in lbs)

    def test_it_reads_v1_elb_policy_lists(self, fixture_bytes) -> None:
        lbs = parse_policies(fixture_bytes("hns-policylist-v1.json"))
        assert len(lbs) == 3
        assert lbs[1].vips == ("10.96.0.10",)
        assert lbs[1].ports == (HnsPortMapping("TCP", 53, 53),)
        assert all("/" not in e for e in lbs[0].endpoint_ids)
        assert lbs[0].applied

    def test_it_reads_the_dsr_flag(self) -> None:
        text = (
            '{"ID": "X", "FrontendVIPs": ["10.0.0.5"], '
            '"PortMappings": [{"Protocol": 6, "InternalPort": 80, "ExternalPort": 30080}], "Flags": 1}'
        )
        [lb] = parse_policies(text)
        assert lb.dsr and lb.ports == (HnsPortMapping("TCP", 80, 30080),)
