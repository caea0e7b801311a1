from __future__ import annotations

from tests.diagnostics.builders import fixture_text, make_snapshot, without_services
from tests.diagnostics.checks.outcomes import failures, unknowns

SUBNET_ENV_MISSING = "flannel.subnet-env-missing"
WAITING = "flannel.waiting-for-network"


class TestSubnetEnvMissing:
    def test_it_reports_missing_subnet_env_with_a_file_for_this_node(self) -> None:
        snap = make_snapshot(files={"subnet.env": False})

        [finding] = failures(snap, SUBNET_ENV_MISSING)

        assert finding.severity.slug == "critical"
        assert r"C:\run\flannel\subnet.env does not exist" in finding.evidence[0].excerpt
        assert finding.steps[0].commands[0] == "Restart-Service flanneld"
        written = "\n".join(finding.steps[1].commands)
        assert "FLANNEL_NETWORK=10.244.0.0/16" in written
        assert "FLANNEL_SUBNET=10.244.2.1/24" in written
        assert "FLANNEL_MTU=1500" in written

    def test_it_reports_kubelet_sandbox_errors_naming_subnet_env(self) -> None:
        # A bundle of logs only: the file itself was not collected.
        snap = make_snapshot(files={"subnet.env": None}, logs={"kubelet": fixture_text("logs/kubelet-subnet-env.log")})

        [finding] = failures(snap, SUBNET_ENV_MISSING)

        assert finding.evidence[0].source == r"C:\k\kubelet.log"
        assert finding.evidence[0].line == 2
        assert "loadFlannelSubnetEnv failed" in finding.evidence[0].excerpt

    def test_it_uses_the_vxlan_mtu_for_a_vxlan_backend(self) -> None:
        conf = '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 4096, "Port": 4789}}'
        snap = make_snapshot(files={"subnet.env": False, "net-conf.json": conf})

        [finding] = failures(snap, SUBNET_ENV_MISSING)

        assert "FLANNEL_MTU=1450" in finding.fix[1]

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), SUBNET_ENV_MISSING) == []
        assert unknowns(make_snapshot(), SUBNET_ENV_MISSING) == []

    def test_it_stays_quiet_without_flannel(self) -> None:
        snap = make_snapshot(
            files={"subnet.env": False, "net-conf.json": False, "cni.conf": False},
            services=without_services("flanneld"),
            logs={"flanneld": None},
        )

        assert failures(snap, SUBNET_ENV_MISSING) == []

    def test_it_is_unknown_when_neither_the_file_nor_logs_were_collected(self) -> None:
        snap = make_snapshot(files={"subnet.env": None}, logs={"flanneld": None, "kubelet": None})

        [finding] = unknowns(snap, SUBNET_ENV_MISSING)

        assert "subnet.env" in finding.summary


class TestWaitingForNetwork:
    def test_it_reports_a_start_script_stuck_waiting(self) -> None:
        snap = make_snapshot(logs={"start-script": (r"C:\k\start.log", fixture_text("logs/start-waiting.log"))})

        [finding] = failures(snap, WAITING)

        assert "lines 2 to 6" in finding.summary
        assert [e.line for e in finding.evidence] == [2, 6]
        assert finding.fix[:3] == (
            "nssm set flanneld AppEnvironmentExtra NODE_NAME=win-node-1",
            r"nssm set flanneld AppParameters --kubeconfig-file=c:\k\config --iface=10.0.0.15 --ip-masq=1 "
            "--kube-subnet-mgr=1",
            "Restart-Service flanneld",
        )

    def test_it_fills_in_the_seed_command_when_flanneld_is_not_a_service(self) -> None:
        snap = make_snapshot(
            services=without_services("flanneld"), logs={"flanneld": fixture_text("logs/start-waiting.log")}
        )

        [finding] = failures(snap, WAITING)

        assert finding.fix[1] == '[Environment]::SetEnvironmentVariable("NODE_NAME", "win-node-1")'
        assert finding.fix[2] == (
            r"C:\flannel\flanneld.exe --kubeconfig-file=c:\k\config --iface=10.0.0.15 --ip-masq=1 --kube-subnet-mgr=1"
        )

    def test_it_stays_quiet_when_the_log_moved_on(self) -> None:
        text = fixture_text("logs/start-waiting.log") + "Starting kubelet\r\n"
        snap = make_snapshot(logs={"start-script": text})

        assert failures(snap, WAITING) == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), WAITING) == []
        assert unknowns(make_snapshot(), WAITING) == []


SOURCE_VIP = """{
    "cniVersion": "0.2.0",
    "ip4": {
        "ip": "10.244.5.13/24",
        "gateway": "10.244.5.1"
    },
    "dns": {}
}
"""
SOURCE_VIP_REQUEST = """{
    "cniVersion": "0.2.0",
    "name": "vxlan0",
    "ipam": {
        "type": "host-local",
        "ranges": [
            {
                "subnet": "10.244.5.0/24"
            }
        ],
        "dataDir": "/var/lib/cni/networks"
    }
}
"""


class TestStaleSourceVip:
    def test_it_reports_source_vip_files_from_an_earlier_subnet(self) -> None:
        snap = make_snapshot(files={"SourceVip.json": SOURCE_VIP, "SourceVipRequest.json": SOURCE_VIP_REQUEST})

        [finding] = failures(snap, "flannel.stale-sourcevip")

        assert finding.fix[:2] == (r"Remove-Item 'C:\k\SourceVip.json'", r"Remove-Item 'C:\k\SourceVipRequest.json'")
        assert "10.244.5.13 is outside 10.244.2.0/24" in finding.evidence[0].excerpt
        assert finding.fix[2:] == ("Restart-Service flanneld", "Restart-Service kube-proxy")

    def test_it_accepts_files_for_the_current_subnet(self) -> None:
        snap = make_snapshot(
            files={
                "SourceVip.json": SOURCE_VIP.replace("10.244.5", "10.244.2"),
                "SourceVipRequest.json": SOURCE_VIP_REQUEST.replace("10.244.5", "10.244.2"),
            }
        )
        assert failures(snap, "flannel.stale-sourcevip") == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "flannel.stale-sourcevip") == []


VXLAN = '{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": %s, "Port": %s}}'


class TestVxlanParams:
    def test_it_reports_a_vni_other_than_4096(self) -> None:
        snap = make_snapshot(files={"net-conf.json": VXLAN % (1, 8472)})

        [finding] = failures(snap, "flannel.vxlan-params")

        assert '"VNI": 1' in finding.summary and '"Port": 8472' in finding.summary
        assert '"VNI": 4096, "Port": 4789' in finding.fix[0]

    def test_it_accepts_the_windows_values(self) -> None:
        assert failures(make_snapshot(files={"net-conf.json": VXLAN % (4096, 4789)}), "flannel.vxlan-params") == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "flannel.vxlan-params") == []


def flannel_pod(image: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-flannel-ds-windows-amd64-8kq2z", "namespace": "kube-system"},
        "spec": {"containers": [{"name": "kube-flannel", "image": image}], "nodeName": "win-node-1"},
        "status": {"phase": "Running"},
    }


class TestVersionNodeToPod:
    def test_it_reports_flannel_older_than_0_12_with_vxlan(self) -> None:
        snap = make_snapshot(
            files={"net-conf.json": VXLAN % (4096, 4789)},
            pods=(flannel_pod("sigwindowstools/flannel:0.11.0"),),
        )

        [finding] = failures(snap, "flannel.version-node-to-pod")

        assert finding.severity.slug == "info"
        assert finding.evidence[0].excerpt == "spec.containers[0].image: sigwindowstools/flannel:0.11.0"

    def test_it_accepts_a_current_flannel(self) -> None:
        snap = make_snapshot(
            files={"net-conf.json": VXLAN % (4096, 4789)},
            pods=(flannel_pod("sigwindowstools/flannel:v0.21.5-hostprocess"),),
        )
        assert failures(snap, "flannel.version-node-to-pod") == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "flannel.version-node-to-pod") == []


class TestSubnetMismatch:
    def test_it_reports_subnet_env_for_another_subnet(self) -> None:
        env = fixture_text("checks/healthy/subnet.env").replace("10.244.2.1/24", "10.244.7.1/24")
        snap = make_snapshot(files={"subnet.env": env})

        [finding] = failures(snap, "flannel.subnet-mismatch")

        assert finding.evidence[0].excerpt == "10.244.2.0/24"
        assert finding.evidence[1].excerpt == "FLANNEL_SUBNET=10.244.7.1/24"
        assert "FLANNEL_SUBNET=10.244.2.1/24" in finding.fix[1]

    def test_it_reports_an_hns_network_for_another_subnet(self) -> None:
        snap = make_snapshot(node_patch=lambda n: n["spec"].update(podCIDR="10.244.9.0/24", podCIDRs=["10.244.9.0/24"]))

        [finding] = failures(snap, "flannel.subnet-mismatch")

        assert any(e.excerpt == "cbr0 Subnets: 10.244.2.0/24" for e in finding.evidence)

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "flannel.subnet-mismatch") == []


def test_it_stays_quiet_once_subnet_env_is_back_even_with_old_errors_in_the_log() -> None:
    snap = make_snapshot(logs={"kubelet": fixture_text("logs/kubelet-subnet-env.log")})
    assert snap.hits(SUBNET_ENV_MISSING), "the log still holds the old error"
    assert failures(snap, SUBNET_ENV_MISSING) == []
