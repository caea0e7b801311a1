from __future__ import annotations

from diagnostics.facts import ConnectivityResult
from tests.diagnostics.builders import healthy_pods, make_snapshot
from tests.diagnostics.checks.outcomes import failures

PQDN = "dns.pqdn-unsupported"
HOSTNET = "dns.clusterfirstwithhostnet"

NSLOOKUP = (
    "PS C:\\> kubectl exec -it iis-web-7d9c6b5f8d-x2k4p -- nslookup kubernetes.default\r\n"
    "Server:  kube-dns.kube-system.svc.cluster.local\r\n"
    "Address:  10.96.0.10\r\n"
    "\r\n"
    "*** kube-dns.kube-system.svc.cluster.local can't find kubernetes.default: Non-existent domain\r\n"
)


class TestPqdnUnsupported:
    def test_it_explains_a_failed_lookup_in_a_transcript(self) -> None:
        snap = make_snapshot(logs={"transcript": ("transcript.txt", NSLOOKUP)})

        [finding] = failures(snap, PQDN)

        assert finding.evidence[0].line == 5
        assert "kubernetes.default.svc.cluster.local" in finding.fix[0]

    def test_it_explains_a_failed_dns_probe_from_a_pod(self) -> None:
        result = ConnectivityResult(
            "dns",
            "kubernetes.default.svc",
            "pod",
            False,
            "DNS name does not exist",
            {"pod": "default/iis-web-7d9c6b5f8d-x2k4p"},
        )
        [finding] = failures(make_snapshot(connectivity=(result,)), PQDN)

        assert "kubernetes.default.svc" in finding.summary

    def test_it_stays_quiet_for_fully_qualified_names(self) -> None:
        result = ConnectivityResult("dns", "kubernetes.default.svc.cluster.local", "pod", False)
        assert failures(make_snapshot(connectivity=(result,)), PQDN) == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), PQDN) == []


class TestClusterFirstWithHostNet:
    def test_it_reports_the_dns_policy(self) -> None:
        pod = healthy_pods()[0]
        pod["spec"]["dnsPolicy"] = "ClusterFirstWithHostNet"

        [finding] = failures(make_snapshot(pods=(pod,)), HOSTNET)

        assert finding.subject == "Pod/default/iis-web-7d9c6b5f8d-x2k4p"
        assert finding.evidence[0].excerpt == "spec.dnsPolicy: ClusterFirstWithHostNet"

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), HOSTNET) == []
