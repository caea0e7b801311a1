from __future__ import annotations

from diagnostics.facts import ComputerInfo, ConnectivityResult, HotFix, OsInfo, Service
from diagnostics.snapshot import Fact
from tests.diagnostics.builders import KUBE_PROXY_CMD, make_snapshot, with_services
from tests.diagnostics.checks.outcomes import failures, unknowns

POD = {"pod": "default/iis-web-7d9c6b5f8d-x2k4p"}


def test(kind: str, target: str, origin: str, ok: bool, output: str = "") -> ConnectivityResult:
    return ConnectivityResult(kind, target, origin, ok, output, dict(POD) if origin == "pod" else {})


test.__test__ = False  # a builder, not a test


class TestNodeportLocal:
    def test_it_explains_a_nodeport_failing_only_from_the_node(self) -> None:
        snap = make_snapshot(
            connectivity=(
                test("nodeport", "10.0.0.15:31080", "node", False, "curl: (28) Connection timed out after 5001 ms"),
                test("nodeport", "10.0.0.15:31080", "peer", True, "200"),
            )
        )

        [finding] = failures(snap, "network.nodeport-local")

        assert finding.severity.slug == "info"
        assert finding.subject == "10.0.0.15:31080"

    def test_it_stays_quiet_when_the_nodeport_fails_everywhere(self) -> None:
        snap = make_snapshot(
            connectivity=(
                test("nodeport", "10.0.0.15:31080", "node", False),
                test("nodeport", "10.0.0.15:31080", "peer", False),
            )
        )
        assert failures(snap, "network.nodeport-local") == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "network.nodeport-local") == []


class TestServiceVipFromNode:
    def test_it_explains_a_vip_only_pods_can_reach(self) -> None:
        snap = make_snapshot(
            connectivity=(
                test("service-vip", "10.101.48.211:80", "node", False),
                test("service-vip", "10.101.48.211:80", "pod", True),
            )
        )

        [finding] = failures(snap, "network.service-vip-from-node")

        assert "while its pods can" in finding.summary

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "network.service-vip-from-node") == []


class TestIcmpExternal:
    def test_it_offers_the_curl_that_replaces_a_failing_external_ping(self) -> None:
        snap = make_snapshot(
            connectivity=(
                test("ping", "93.184.216.34", "pod", False, "Request timed out."),
                test("ping", "10.244.3.12", "pod", True, "Reply from 10.244.3.12: bytes=32 time<1ms TTL=128"),
            )
        )

        [finding] = failures(snap, "network.icmp-external")

        assert "In-cluster ping works." in finding.summary
        assert finding.fix[0] == (
            "Test with TCP instead of ping: kubectl exec -n default iis-web-7d9c6b5f8d-x2k4p -- "
            "curl.exe -sS -m 5 -o NUL -w '%{http_code}' http://93.184.216.34/"
        )

    def test_it_stays_quiet_for_an_in_cluster_ping_failure(self) -> None:
        snap = make_snapshot(connectivity=(test("ping", "10.244.3.12", "pod", False),))
        assert failures(snap, "network.icmp-external") == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "network.icmp-external") == []


class TestMacSpoofing:
    def test_it_reports_a_vm_whose_pods_reach_nothing(self) -> None:
        snap = make_snapshot(
            connectivity=(
                test("ping", "10.244.3.12", "pod", False),
                test("curl", "10.101.48.211:80", "pod", False),
                test("ping", "10.0.0.10", "node", True),
            )
        )

        [finding] = failures(snap, "network.mac-spoofing")

        assert "Microsoft Corporation Virtual Machine" in finding.summary
        assert "Get-VMNetworkAdapter -VMName win-node-1 | Set-VMNetworkAdapter -MacAddressSpoofing On" in finding.fix[0]

    def test_it_stays_quiet_on_physical_hardware(self) -> None:
        snap = make_snapshot(
            computer=Fact(ComputerInfo("Dell Inc.", "PowerEdge R740", False), "probe:os.computer"),
            connectivity=(test("ping", "10.244.3.12", "pod", False),),
        )
        assert failures(snap, "network.mac-spoofing") == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "network.mac-spoofing") == []


OVERLAY_CONF = '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 4096, "Port": 4789}}'


class TestOverlayHotfixMissing:
    def test_it_reports_an_unpatched_2019_host_with_overlay(self) -> None:
        snap = make_snapshot(
            os=Fact(OsInfo(17763, 253, "ServerDatacenter"), "probe:os.info"),
            hotfixes=Fact((HotFix("KB4470788"), HotFix("KB4480116")), "probe:os.hotfixes"),
            files={"net-conf.json": OVERLAY_CONF},
        )

        [finding] = failures(snap, "network.overlay-hotfix-missing")

        assert "10.0.17763.253" in finding.summary

    def test_it_accepts_a_2019_host_with_a_later_cumulative_update(self) -> None:
        snap = make_snapshot(os=Fact(OsInfo(17763, 6293), "probe:os.info"), files={"net-conf.json": OVERLAY_CONF})
        assert failures(snap, "network.overlay-hotfix-missing") == []

    def test_it_is_unknown_without_update_revision_or_hotfixes(self) -> None:
        snap = make_snapshot(
            os=Fact(OsInfo(17763), "probe:os.info"), hotfixes=None, files={"net-conf.json": OVERLAY_CONF}
        )
        assert len(unknowns(snap, "network.overlay-hotfix-missing")) == 1

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "network.overlay-hotfix-missing") == []


class TestDsrUnsupported:
    def test_it_reports_dsr_on_windows_server_2019(self) -> None:
        line = KUBE_PROXY_CMD.replace("--enable-dsr=false", '--enable-dsr=true --feature-gates="WinDSR=true"')
        snap = make_snapshot(
            services=with_services(Service("kube-proxy", "Running", "Automatic", line)),
            os=Fact(OsInfo(17763, 6293), "probe:os.info"),
        )

        [finding] = failures(snap, "network.dsr-unsupported")

        assert "Windows Server 2019 (build 17763)" in finding.summary

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "network.dsr-unsupported") == []


class TestDualstackUnsupported:
    def test_it_reports_dual_stack_on_overlay(self) -> None:
        snap = make_snapshot(
            files={"net-conf.json": OVERLAY_CONF},
            node_patch=lambda n: n["spec"].update(podCIDRs=["10.244.2.0/24", "fd00:10:244:2::/64"]),
        )

        [finding] = failures(snap, "network.dualstack-unsupported")

        assert "not overlay" in finding.summary

    def test_it_reports_dual_stack_on_an_old_build(self) -> None:
        snap = make_snapshot(
            os=Fact(OsInfo(17763, 6293), "probe:os.info"),
            node_patch=lambda n: n["spec"].update(podCIDRs=["10.244.2.0/24", "fd00:10:244:2::/64"]),
        )

        [finding] = failures(snap, "network.dualstack-unsupported")

        assert "needs build 19603" in finding.summary

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "network.dualstack-unsupported") == []
