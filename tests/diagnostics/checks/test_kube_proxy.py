from __future__ import annotations

from diagnostics.facts import Process, Service
from diagnostics.snapshot import Fact
from tests.diagnostics.builders import KUBE_PROXY_CMD, make_snapshot, with_services, without_services
from tests.diagnostics.checks.outcomes import failures, unknowns

CHECK = "kube-proxy.hostname-override-missing"
NO_OVERRIDE = KUBE_PROXY_CMD.replace("--hostname-override=win-node-1 ", "")


class TestHostnameOverrideMissing:
    def test_it_reports_an_nssm_service_without_the_flag(self) -> None:
        snap = make_snapshot(services=with_services(Service("kube-proxy", "Running", "Automatic", NO_OVERRIDE)))

        [finding] = failures(snap, CHECK)

        assert finding.severity.slug == "critical"
        assert finding.evidence[0].excerpt == NO_OVERRIDE
        [step] = finding.steps
        assert "nssm" in step.text
        assert step.commands == (
            r"nssm set kube-proxy AppParameters --v=4 --proxy-mode=kernelspace --kubeconfig=c:\k\config "
            r"--network-name=cbr0 --enable-dsr=false --log-dir=c:\k\logs --logtostderr=false "
            "--hostname-override=win-node-1",
            "Restart-Service kube-proxy",
        )

    def test_an_nssm_service_shown_by_the_command_it_runs_is_changed_with_nssm_never_sc_exe(self) -> None:
        # The services parser shows nssm's Application + AppParameters: nssm.exe itself is not in the line.
        line = r"C:\k\kube-proxy.exe --v=4 --proxy-mode=kernelspace --kubeconfig=c:\k\config"
        snap = make_snapshot(services=with_services(Service("kube-proxy", "Running", "Automatic", line)))

        [finding] = failures(snap, CHECK)

        assert not any("sc.exe" in c for step in finding.steps for c in step.commands)
        assert finding.steps[0].commands[0] == (
            r"nssm set kube-proxy AppParameters --v=4 --proxy-mode=kernelspace --kubeconfig=c:\k\config "
            "--hostname-override=win-node-1"
        )

    def test_it_reports_an_sc_service_with_its_bin_path(self) -> None:
        line = r"C:\k\kube-proxy.exe --service --v=4 --proxy-mode=kernelspace --kubeconfig=c:\k\config"
        snap = make_snapshot(services=with_services(Service("kube-proxy", "Running", "Automatic", line)))

        [finding] = failures(snap, CHECK)

        assert (
            finding.steps[0].commands[0] == f'sc.exe config kube-proxy binPath= "{line} --hostname-override=win-node-1"'
        )

    def test_it_reads_a_plain_process_command_line(self) -> None:
        line = r"C:\k\kube-proxy.exe --v=4 --proxy-mode=kernelspace --kubeconfig=c:\k\config"
        snap = make_snapshot(
            services=without_services("kube-proxy"),
            processes=Fact((Process("kube-proxy.exe", 5120, line),), "probe:os.processes"),
        )

        [finding] = failures(snap, CHECK)

        assert finding.evidence[0].source == "probe:os.processes"
        assert "--hostname-override=win-node-1" in finding.fix[0]

    def test_it_is_unknown_without_services_or_processes(self) -> None:
        snap = make_snapshot(services=None, processes=None)

        assert len(unknowns(snap, CHECK)) == 1

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), CHECK) == []
        assert unknowns(make_snapshot(), CHECK) == []
