from __future__ import annotations

from dataclasses import replace

from diagnostics.checks.node import parse_quantity, peer_facts
from diagnostics.facts import Process, Service
from diagnostics.snapshot import ClusterView, Fact, PeerSummary, count_peer_facts
from tests.diagnostics.builders import KUBELET_CMD, hns_event, make_snapshot, with_services, without_services
from tests.diagnostics.checks.outcomes import failures, unknowns


def not_ready(node: dict) -> None:
    for cond in node["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond.update(
                status="False",
                reason="KubeletNotReady",
                message="container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                "message:Network plugin returns error: cni plugin not initialized",
            )


class TestComponentsNotRunning:
    def test_it_reports_a_stopped_kube_proxy_service(self) -> None:
        snap = make_snapshot(services=with_services(Service("kube-proxy", "Stopped", "Automatic", "C:\\k\\nssm.exe")))

        [finding] = failures(snap, "node.components-not-running")

        assert finding.evidence[0].excerpt == "kube-proxy: Stopped"
        [step] = finding.steps
        assert step.commands == ("Start-Service kube-proxy", r"Get-Content C:\k\kube-proxy.log -Tail 50")

    def test_it_reports_a_missing_kubelet_and_the_not_ready_condition(self) -> None:
        snap = make_snapshot(services=without_services("kubelet"), node_patch=not_ready)

        [finding] = failures(snap, "node.components-not-running")

        assert "no kubelet service or process" in finding.evidence[0].excerpt
        assert "KubeletNotReady" in finding.evidence[1].excerpt

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "node.components-not-running") == []


class TestComponentsNotServices:
    def test_it_reports_kubelet_started_as_a_plain_process(self) -> None:
        line = r"C:\k\kubelet.exe --hostname-override=win-node-1 --kubeconfig=c:\k\config --v=6"
        snap = make_snapshot(
            services=without_services("kubelet"),
            processes=Fact((Process("kubelet.exe", 4242, line),), "probe:os.processes"),
        )

        [finding] = failures(snap, "node.components-not-services")

        assert finding.subject == "kubelet"
        assert finding.fix[0] == (
            r'sc.exe create kubelet binPath= "C:\k\kubelet.exe --windows-service --hostname-override=win-node-1 '
            r'--kubeconfig=c:\k\config --v=6" start= auto'
        )

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "node.components-not-services") == []


PULL_TIMEOUT = (
    'E1124 08:01:12.551902    4242 remote_image.go:180] "PullImage from image service failed" err="rpc error: '
    'code = Unknown desc = failed to pull and unpack image \\"mcr.microsoft.com/windows/servercore/iis:'
    'windowsservercore-ltsc2022\\": failed to resolve reference: failed to do request: Head \\"https://mcr.microsoft.com/v2/windows/'
    'servercore/iis/manifests/windowsservercore-ltsc2022\\": dial tcp 204.79.197.219:443: i/o timeout"\n'
)


class TestProxyEnvMissing:
    def test_it_reports_pull_timeouts_without_a_machine_proxy(self) -> None:
        snap = make_snapshot(logs={"kubelet": PULL_TIMEOUT})

        [finding] = failures(snap, "node.proxy-env-missing")

        assert finding.evidence[0].line == 1
        assert "[EnvironmentVariableTarget]::Machine" in finding.fix[0]

    def test_it_accepts_a_machine_proxy(self) -> None:
        env = Fact({"HTTP_PROXY": "http://proxy.corp:3128/", "HTTPS_PROXY": "http://proxy.corp:3128/"}, "probe:os.env")
        assert failures(make_snapshot(logs={"kubelet": PULL_TIMEOUT}, machine_env=env), "node.proxy-env-missing") == []

    def test_it_is_unknown_when_the_environment_was_not_collected(self) -> None:
        snap = make_snapshot(logs={"kubelet": PULL_TIMEOUT}, machine_env=None)
        assert len(unknowns(snap, "node.proxy-env-missing")) == 1

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "node.proxy-env-missing") == []


class TestNotReady:
    def test_it_reports_the_ready_condition_reason(self) -> None:
        [finding] = failures(make_snapshot(node_patch=not_ready), "node.not-ready")

        assert "KubeletNotReady" in finding.evidence[0].excerpt
        assert "cni plugin not initialized" in finding.evidence[0].excerpt
        assert finding.steps[0].commands == ("kubectl describe node win-node-1",)

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "node.not-ready") == []


class TestMemoryReserveLow:
    def test_it_reports_missing_reserves(self) -> None:
        line = KUBELET_CMD.replace(" --system-reserved=memory=2Gi --kube-reserved=memory=512Mi", "")
        snap = make_snapshot(services=with_services(Service("kubelet", "Running", "Automatic", line)))

        [finding] = failures(snap, "node.memory-reserve-low")

        assert "0.00 GiB" in finding.summary

    def test_it_adds_system_and_kube_reserves(self) -> None:
        line = KUBELET_CMD.replace("--system-reserved=memory=2Gi", "--system-reserved=cpu=500m,memory=1000Mi")
        snap = make_snapshot(services=with_services(Service("kubelet", "Running", "Automatic", line)))

        [finding] = failures(snap, "node.memory-reserve-low")

        assert "1.48 GiB" in finding.summary

    def test_it_reads_quantities(self) -> None:
        assert parse_quantity("2Gi") == 2**31
        assert parse_quantity("1500M") == 1.5e9
        assert parse_quantity("lots") is None

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "node.memory-reserve-low") == []


class TestHnsCrash:
    def test_it_reports_hns_termination_events(self) -> None:
        event = hns_event("The Host Network Service service terminated unexpectedly.  It has done this 2 time(s).")
        snap = make_snapshot(hns_events=Fact((event,), "probe:os.hnsevents"))

        [finding] = failures(snap, "node.hns-crash")

        assert "terminated unexpectedly" in finding.evidence[0].excerpt

    def test_it_reports_a_stopped_hns_service(self) -> None:
        hns = Service("hns", "Stopped", "Manual", r"C:\Windows\system32\svchost.exe -k NetSvcs -p")
        [finding] = failures(make_snapshot(services=with_services(hns)), "node.hns-crash")

        assert finding.evidence[0].excerpt == "hns: Stopped"

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "node.hns-crash") == []


class TestVersionSkew:
    def test_it_reports_a_kubelet_too_far_behind(self) -> None:
        view = replace(make_snapshot().cluster_view, server_version="v1.34.1")

        findings = failures(make_snapshot(cluster_view=view), "node.version-skew")

        assert {f.subject for f in findings} == {"kubelet", "kube-proxy"}
        assert "4 minor versions behind" in findings[0].summary

    def test_it_reports_a_kubelet_newer_than_the_api_server(self) -> None:
        view = replace(make_snapshot().cluster_view, server_version="v1.29.8")

        findings = failures(make_snapshot(cluster_view=view), "node.version-skew")

        assert "newer than" in findings[0].summary

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "node.version-skew") == []


class TestConfigDrift:
    def test_it_names_the_odd_one_out(self) -> None:
        base = make_snapshot().cluster_view
        peers = tuple(PeerSummary(p.node, {**p.facts, "pause_image": "registry.k8s.io/pause:3.10"}) for p in base.peers)
        snap = make_snapshot(cluster_view=replace(base, peers=peers))

        [finding] = failures(snap, "node.config-drift")

        assert finding.subject == "pause_image"
        assert (
            "pause (sandbox) image is registry.k8s.io/pause:3.9, "
            "but the other 2 Windows nodes all have registry.k8s.io/pause:3.10" in finding.summary
        )

    def test_the_counts_shared_by_a_cluster_find_what_counting_the_peers_finds(self) -> None:
        snap = make_snapshot()
        peers = tuple(
            PeerSummary(f"win-{i:03}", {**peer_facts(snap), "pause_image": "registry.k8s.io/pause:3.10"})
            for i in range(500)
        )
        own = PeerSummary(snap.node, peer_facts(snap))
        view = ClusterView(peers=peers, peer_counts=count_peer_facts((*peers, own)), own=own, source="api:lab")

        [shared] = failures(replace(snap, cluster_view=view), "node.config-drift")
        counting = ClusterView(peers=peers, source="api:lab")
        [counted] = failures(replace(snap, cluster_view=counting), "node.config-drift")

        assert shared == counted
        assert "the other 500 Windows nodes all have registry.k8s.io/pause:3.10" in shared.summary
        assert shared.evidence[1].excerpt.endswith("win-009: registry.k8s.io/pause:3.10 and 490 more")

    def test_it_gives_the_facts_peers_are_compared_on(self) -> None:
        facts = peer_facts(make_snapshot())

        assert facts["pause_image"] == "registry.k8s.io/pause:3.9"
        assert facts["os_build"] == "20348"
        assert facts["kube_proxy_network"] == "cbr0"

    def test_it_needs_two_peers_that_agree(self) -> None:
        view = ClusterView(peers=(PeerSummary("win-node-2", {"pause_image": "other"}),))
        assert failures(make_snapshot(cluster_view=view), "node.config-drift") == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), "node.config-drift") == []
