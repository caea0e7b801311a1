from __future__ import annotations

from dataclasses import replace

from diagnostics.facts import HnsEndpoint, NetAdapter, PortRange
from diagnostics.snapshot import Fact
from tests.diagnostics.builders import fixture_text, make_snapshot
from tests.diagnostics.checks.outcomes import failures, unknowns

NETWORK_MISSING = "hns.network-missing"


def networks_without(name: str) -> Fact:
    base = make_snapshot().hns_networks
    return Fact(tuple(n for n in base.value if n.name != name), base.source)


class TestNetworkMissing:
    def test_it_reports_a_missing_cbr0_network(self) -> None:
        snap = make_snapshot(hns_networks=networks_without("cbr0"))

        [finding] = failures(snap, NETWORK_MISSING)

        assert "no HNS network named 'cbr0'" in finding.summary
        assert "--network-name" in finding.summary
        assert finding.evidence[0].excerpt == "Get-HnsNetwork: nat (nat)"
        assert finding.steps[0].commands == (
            'Get-HnsNetwork | ? Name -ieq "cbr0"',
            'Get-NetAdapter | ? Name -Like "vEthernet (*"',
        )

    def test_it_expects_vxlan0_for_a_flannel_vxlan_node_without_an_explicit_name(self) -> None:
        base = make_snapshot()
        services = Fact(
            tuple(
                replace(s, command_line=s.command_line.replace("--network-name=cbr0 ", ""))
                if s.name == "kube-proxy"
                else s
                for s in base.services.value
            ),
            base.services.source,
        )
        conf = '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 4096, "Port": 4789}}'
        snap = make_snapshot(
            services=services,
            machine_env=Fact({"NODE_NAME": "win-node-1"}, "probe:os.env"),
            files={"net-conf.json": conf, "cni.conf": False},
            hns_networks=networks_without("cbr0"),
        )

        [finding] = failures(snap, NETWORK_MISSING)

        assert "no HNS network named 'vxlan0' (the Flannel default for VXLAN)" in finding.summary

    def test_it_reports_a_missing_vethernet_adapter_and_names_the_host_adapter(self) -> None:
        adapters = Fact(
            (
                NetAdapter("Ethernet0", "vmxnet3 Ethernet Adapter", 6, "Up", "00-50-56-9A-11-22"),
                NetAdapter("vEthernet (nat)", "Hyper-V Virtual Ethernet Adapter", 22, "Up"),
            ),
            "probe:net.adapters",
        )
        snap = make_snapshot(adapters=adapters, hns_networks=networks_without("cbr0"))

        [finding] = failures(snap, NETWORK_MISSING)

        assert "no vEthernet adapter" in finding.summary
        assert any(e.excerpt == "Get-NetAdapter: Ethernet0, vEthernet (nat)" for e in finding.evidence)
        assert "-InterfaceName 'Ethernet0'" in finding.fix[1]

    def test_it_accepts_a_vswitch_named_after_a_host_adapter_not_called_ethernet(self) -> None:
        adapters = Fact(
            (
                NetAdapter("LAN", "Intel(R) Ethernet Controller X710", 6, "Up"),
                NetAdapter("vEthernet (LAN)", "Hyper-V Virtual Ethernet Adapter", 14, "Up"),
            ),
            "probe:net.adapters",
        )
        assert failures(make_snapshot(adapters=adapters), NETWORK_MISSING) == []

    def test_it_reports_kube_proxy_failing_to_find_the_network(self) -> None:
        snap = make_snapshot(logs={"kube-proxy": fixture_text("logs/kube-proxy-no-network.log")})

        [finding] = failures(snap, NETWORK_MISSING)

        assert finding.evidence[0].line == 2
        assert "Unable to find HNS Network specified" in finding.evidence[0].excerpt

    def test_it_is_unknown_without_hns_or_adapter_data(self) -> None:
        snap = make_snapshot(hns_networks=None, adapters=None)

        assert len(unknowns(snap, NETWORK_MISSING)) == 1

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), NETWORK_MISSING) == []
        assert unknowns(make_snapshot(), NETWORK_MISSING) == []


def replace_network(**changes: object) -> Fact:
    base = make_snapshot().hns_networks
    return Fact(tuple(replace(n, **changes) if n.name == "cbr0" else n for n in base.value), base.source)


class TestManagementIpMismatch:
    def test_it_reports_a_management_ip_the_node_does_not_have(self) -> None:
        snap = make_snapshot(hns_networks=replace_network(management_ip="192.168.50.4"))

        [finding] = failures(snap, "hns.management-ip-mismatch")

        assert "192.168.50.4" in finding.summary
        assert finding.evidence[0].excerpt == "cbr0 ManagementIP: 192.168.50.4"
        assert "--iface=10.0.0.15" in finding.fix[1]

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "hns.management-ip-mismatch") == []


def endpoints_plus(*extra: HnsEndpoint) -> Fact:
    base = make_snapshot().hns_endpoints
    return Fact(base.value + extra, base.source)


class TestEndpointState:
    def test_it_reports_detached_and_orphaned_endpoints(self) -> None:
        snap = make_snapshot(
            hns_endpoints=endpoints_plus(
                HnsEndpoint("0C1D2E3F-4A5B-4C6D-8E7F-9A0B1C2D3E4F", "9f3c_cbr0", "10.244.2.31", "3D0B8C4A", "Detached"),
                HnsEndpoint("1D2E3F4A-5B6C-4D7E-8F9A-0B1C2D3E4F5A", "77ab_cbr0", "10.244.2.40", "", "Attached"),
            )
        )

        [finding] = failures(snap, "hns.endpoint-state")

        assert "1 local HNS endpoint(s) in a failed or detached state and 1" in finding.summary
        assert "'0C1D2E3F-4A5B-4C6D-8E7F-9A0B1C2D3E4F'" in finding.fix[0]

    def test_it_reads_numeric_v1_states(self) -> None:
        shared = HnsEndpoint("3F4A5B6C-0001-4D8E-9F0A-1B2C3D4E5F6A", "aa_cbr0", "10.244.2.7", "", "3")
        destroyed = HnsEndpoint("3F4A5B6C-0002-4D8E-9F0A-1B2C3D4E5F6A", "bb_cbr0", "10.244.2.7", "", "6")

        assert failures(make_snapshot(hns_endpoints=endpoints_plus(shared)), "hns.endpoint-state") == []
        [finding] = failures(make_snapshot(hns_endpoints=endpoints_plus(destroyed)), "hns.endpoint-state")
        assert "State=6" in finding.evidence[0].excerpt

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "hns.endpoint-state") == []


class TestStaleRemoteEndpoints:
    def test_it_reports_remote_endpoints_no_endpointslice_holds(self) -> None:
        snap = make_snapshot(
            hns_endpoints=endpoints_plus(
                HnsEndpoint("2E3F4A5B-6C7D-4E8F-9A0B-1C2D3E4F5A6B", "Ethernet", "10.244.3.99", "", "", is_remote=True)
            )
        )

        [finding] = failures(snap, "hns.stale-remote-endpoints")

        assert finding.evidence[0].excerpt == "2E3F4A5B-6C7D-4E8F-9A0B-1C2D3E4F5A6B 10.244.3.99 IsRemoteEndpoint"
        assert "'10.244.3.99'" in finding.fix[0]

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "hns.stale-remote-endpoints") == []


class TestLbPolicyMissing:
    def test_it_reports_a_service_without_a_load_balancer(self) -> None:
        base = make_snapshot().hns_policies
        snap = make_snapshot(hns_policies=Fact(base.value[1:], base.source))

        [finding] = failures(snap, "hns.lb-policy-missing")

        assert finding.evidence[0].source.endswith("Service/default/iis-web")
        assert finding.evidence[0].excerpt == "ClusterIP 10.101.48.211 TCP/80"

    def test_it_reports_a_missing_nodeport_policy(self) -> None:
        base = make_snapshot().hns_policies
        snap = make_snapshot(hns_policies=Fact(base.value[:1], base.source))

        [finding] = failures(snap, "hns.lb-policy-missing")

        assert finding.evidence[0].excerpt == "NodePort TCP/31080"

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "hns.lb-policy-missing") == []


class TestPortExhaustion:
    def test_it_reports_a_dynamic_range_taken_by_exclusions(self) -> None:
        snap = make_snapshot(
            dynamic_ports=Fact(PortRange(49152, 16384), "probe:net.dynamicports"),
            excluded_ports=Fact((PortRange(49152, 8000), PortRange(57152, 7000)), "probe:net.excludedports"),
        )

        [finding] = failures(snap, "hns.port-exhaustion")

        assert "Only 1384 of 16384 dynamic ports remain usable" in finding.summary

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "hns.port-exhaustion") == []
