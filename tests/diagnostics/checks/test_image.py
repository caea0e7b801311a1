from __future__ import annotations

from tests.diagnostics.builders import fixture_text, healthy_pods, make_snapshot
from tests.diagnostics.checks.outcomes import failures

CHECK = "image.os-version-mismatch"


def pod_with_image(image: str) -> dict:
    pod = healthy_pods()[0]
    pod["spec"]["containers"][0]["image"] = image
    return pod


class TestOsVersionMismatch:
    def test_it_reports_a_pod_image_for_another_build(self) -> None:
        snap = make_snapshot(
            pods=(pod_with_image("mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2019"),)
        )

        [finding] = failures(snap, CHECK)

        assert finding.subject == "Pod/default/iis-web-7d9c6b5f8d-x2k4p:iis"
        assert finding.evidence[0].excerpt.startswith("spec.containers[0].image: ")
        assert "an image tagged for ltsc2022 (this host's release)" in finding.fix[0]

    def test_it_reports_the_runtime_error_in_the_kubelet_log(self) -> None:
        snap = make_snapshot(logs={"kubelet": fixture_text("logs/kubelet-os-mismatch.log")})

        [finding] = failures(snap, CHECK)

        assert finding.subject == "logs"
        assert [e.line for e in finding.evidence] == [2, 3, 4]

    def test_it_accepts_hyperv_isolated_pods(self) -> None:
        pod = pod_with_image("mcr.microsoft.com/windows/servercore:ltsc2019")
        pod["spec"]["runtimeClassName"] = "runhcs-wcow-hypervisor"
        assert failures(make_snapshot(pods=(pod,)), CHECK) == []

    def test_it_accepts_host_process_pods_whatever_build_their_image_names(self) -> None:
        # HostProcess containers run on the host, not in a container of their own OS version
        # (Kubernetes docs, "Create a Windows HostProcess Pod": images need not match the host's build).
        pod = pod_with_image("mcr.microsoft.com/windows/servercore:ltsc2019")
        pod["spec"]["securityContext"] = {
            "windowsOptions": {"hostProcess": True, "runAsUserName": "NT AUTHORITY\\SYSTEM"}
        }
        pod["spec"]["hostNetwork"] = True
        assert failures(make_snapshot(pods=(pod,)), CHECK) == []

    def test_it_checks_a_container_that_says_it_is_not_host_process(self) -> None:
        pod = pod_with_image("mcr.microsoft.com/windows/servercore:ltsc2019")
        pod["spec"]["containers"][0]["securityContext"] = {"windowsOptions": {"hostProcess": False}}
        assert len(failures(make_snapshot(pods=(pod,)), CHECK)) == 1

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), CHECK) == []
