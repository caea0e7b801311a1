from __future__ import annotations

from diagnostics.facts import OsInfo
from diagnostics.snapshot import Fact
from tests.diagnostics.builders import fixture_json, fixture_text, make_snapshot
from tests.diagnostics.checks.outcomes import failures, unknowns

INCOMPATIBLE = "pause.image-incompatible"
WINCAT = "pause.wincat-missing"

TOML_1809 = """version = 2
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "mcr.microsoft.com/oss/kubernetes/pause:3.6-windows-1809-amd64"
"""


def stuck_pod() -> dict:
    pod = fixture_json("checks/healthy/pods.json")["items"][0]
    pod["status"]["phase"] = "Pending"
    pod["status"]["containerStatuses"][0]["ready"] = False
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    return pod


SANDBOX_EVENT = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"name": "iis-web-7d9c6b5f8d-x2k4p.17f2a8c3b1d4e5f6", "namespace": "default"},
    "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "iis-web-7d9c6b5f8d-x2k4p", "namespace": "default"},
    "reason": "FailedCreatePodSandBox",
    "message": "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to create containerd task: "
    "failed to create shim task: hcs::CreateComputeSystem 8e1d4f2a: The container operating system does not match "
    "the host operating system.: unknown",
    "type": "Warning",
    "count": 14,
    "source": {"component": "kubelet", "host": "win-node-1"},
}


class TestImageIncompatible:
    def test_it_reports_a_pause_image_pinned_to_another_build(self) -> None:
        snap = make_snapshot(files={"containerd-config.toml": TOML_1809})

        [finding] = failures(snap, INCOMPATIBLE)

        assert "Windows Server 2019 (build 17763)" in finding.summary
        assert "Windows Server 2022 (build 20348)" in finding.summary
        assert "registry.k8s.io/pause" in finding.fix[0]

    def test_it_reports_sandbox_errors_in_the_kubelet_log(self) -> None:
        snap = make_snapshot(logs={"kubelet": fixture_text("logs/kubelet-os-mismatch.log")})

        [finding] = failures(snap, INCOMPATIBLE)

        assert [e.line for e in finding.evidence] == [2, 3, 4]

    def test_it_reports_stuck_pods_with_sandbox_events(self) -> None:
        snap = make_snapshot(pods=(stuck_pod(),), events=(SANDBOX_EVENT,))

        [finding] = failures(snap, INCOMPATIBLE)

        excerpts = [e.excerpt for e in finding.evidence]
        assert any("does not match the host operating system" in e for e in excerpts)
        assert "ContainerCreating" in excerpts
        sources = [e.source for e in finding.evidence]
        assert any(s.endswith(" Event/default/iis-web-7d9c6b5f8d-x2k4p.17f2a8c3b1d4e5f6") for s in sources)

    def test_it_leaves_network_sandbox_failures_to_the_network_checks(self) -> None:
        event = dict(
            SANDBOX_EVENT,
            message='Failed to create pod sandbox: plugin type="flannel" failed (add): loadFlannelSubnetEnv failed',
        )
        snap = make_snapshot(pods=(stuck_pod(),), events=(event,))

        assert failures(snap, INCOMPATIBLE) == []

    def test_it_is_unknown_with_no_image_logs_or_events(self) -> None:
        snap = make_snapshot(files={"containerd-config.toml": None}, services=None, logs={"kubelet": None}, events=None)
        assert len(unknowns(snap, INCOMPATIBLE)) == 1

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), INCOMPATIBLE) == []
        assert unknowns(make_snapshot(), INCOMPATIBLE) == []

    def test_it_accepts_a_pinned_image_that_matches_the_host(self) -> None:
        snap = make_snapshot(
            files={"containerd-config.toml": TOML_1809},
            os=Fact(OsInfo(17763, 6293), "probe:os.info"),
        )
        assert failures(snap, INCOMPATIBLE) == []


class TestWincatMissing:
    def test_it_reports_port_forward_failing_for_wincat(self) -> None:
        transcript = (
            "PS C:\\Users\\admin> kubectl port-forward pod/iis-web-7d9c6b5f8d-x2k4p 8080:80\r\n"
            "Forwarding from 127.0.0.1:8080 -> 80\r\n"
            "Handling connection for 8080\r\n"
            "E1124 12:01:44.210351   11832 portforward.go:409] an error occurred forwarding 8080 -> 80: error "
            "forwarding port 80 to pod 4c1f0e9a7b3d, uid : unable to do port forwarding: wincat not found\r\n"
        )
        snap = make_snapshot(logs={"transcript": (r"transcript.txt", transcript)})

        [finding] = failures(snap, WINCAT)

        assert finding.evidence[0].line == 4

    def test_it_reports_an_old_pause_image(self) -> None:
        toml = TOML_1809.replace(
            "mcr.microsoft.com/oss/kubernetes/pause:3.6-windows-1809-amd64", "mcr.microsoft.com/k8s/core/pause:1.0.0"
        )
        snap = make_snapshot(files={"containerd-config.toml": toml})

        [finding] = failures(snap, WINCAT)

        assert "mcr.microsoft.com/k8s/core/pause:1.0.0 predates it" in finding.summary

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), WINCAT) == []
