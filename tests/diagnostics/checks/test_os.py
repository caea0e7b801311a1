from __future__ import annotations

from diagnostics.facts import OsInfo
from diagnostics.snapshot import Fact
from tests.diagnostics.builders import make_snapshot
from tests.diagnostics.checks.outcomes import failures

CHECK = "os.version-unsupported"


def kubelet(version: str):
    return lambda node: node["status"]["nodeInfo"].update(kubeletVersion=version)


class TestVersionUnsupported:
    def test_it_reports_a_semi_annual_build_on_a_current_kubelet(self) -> None:
        snap = make_snapshot(os=Fact(OsInfo(19042, 2364), "probe:os.info"))

        [finding] = failures(snap, CHECK)

        assert "Kubernetes 1.30 supports Windows nodes on Windows Server 2019 (build 17763), Windows Server 2022" in (
            finding.summary
        )
        assert "Windows Server version 20H2 (build 19042)" in finding.summary

    def test_it_uses_the_seed_table_for_old_kubelets(self) -> None:
        snap = make_snapshot(os=Fact(OsInfo(19041, 1), "probe:os.info"), node_patch=kubelet("v1.18.20"))

        [finding] = failures(snap, CHECK)

        assert "Windows Server version 1909 (build 18363)" in finding.summary

    def test_it_accepts_windows_server_2019_on_kubelet_1_19(self) -> None:
        snap = make_snapshot(os=Fact(OsInfo(17763, 1577), "probe:os.info"), node_patch=kubelet("v1.19.16"))
        assert failures(snap, CHECK) == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), CHECK) == []
