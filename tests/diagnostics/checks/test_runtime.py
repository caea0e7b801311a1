from __future__ import annotations

from tests.diagnostics.builders import make_snapshot
from tests.diagnostics.checks.outcomes import failures

CHECK = "runtime.version-unsupported"


def node_info(**values: str):
    return lambda node: node["status"]["nodeInfo"].update(values)


class TestVersionUnsupported:
    def test_it_reports_docker_on_a_kubelet_without_dockershim(self) -> None:
        snap = make_snapshot(node_patch=node_info(containerRuntimeVersion="docker://20.10.9"))

        [finding] = failures(snap, CHECK)

        assert "dockershim was removed in 1.24" in finding.summary

    def test_it_reports_an_old_docker_before_1_24(self) -> None:
        snap = make_snapshot(node_patch=node_info(containerRuntimeVersion="docker://18.9.1", kubeletVersion="v1.19.16"))

        [finding] = failures(snap, CHECK)

        assert "older than the supported 19.03" in finding.summary

    def test_it_reports_containerd_without_cri_v1_on_kubelet_1_26_and_later(self) -> None:
        snap = make_snapshot(node_patch=node_info(containerRuntimeVersion="containerd://1.5.18"))

        [finding] = failures(snap, CHECK)

        assert "CRI v1" in finding.summary

    def test_it_reports_a_containerd_beta_older_than_the_first_windows_one(self) -> None:
        snap = make_snapshot(
            node_patch=node_info(containerRuntimeVersion="containerd://1.4.0-beta.1", kubeletVersion="v1.19.16")
        )
        [finding] = failures(snap, CHECK)

        assert "1.4.0-beta.2" in finding.summary

    def test_it_accepts_containerd_1_4_0_beta_2_on_1_19(self) -> None:
        snap = make_snapshot(
            node_patch=node_info(containerRuntimeVersion="containerd://1.4.0-beta.2", kubeletVersion="v1.19.16")
        )
        assert failures(snap, CHECK) == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), CHECK) == []
