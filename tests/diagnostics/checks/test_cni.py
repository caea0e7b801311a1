from __future__ import annotations

from diagnostics.facts import ConnectivityResult
from tests.diagnostics.builders import fixture_text, make_snapshot
from tests.diagnostics.checks.outcomes import failures, unknowns

CHECK = "cni.exceptionlist"


class TestExceptionList:
    def test_it_gives_the_corrected_list_when_the_service_cidr_is_missing(self) -> None:
        conf = fixture_text("checks/healthy/cni.conf").replace('            "10.96.0.0/12",\n', "")
        snap = make_snapshot(files={"cni.conf": conf})

        [finding] = failures(snap, CHECK)

        assert "lacks the service subnet 10.96.0.0/12" in finding.summary
        assert finding.fix[0] == (
            r"Set delegate.policies[0].Value.ExceptionList in C:\etc\cni\net.d\10-flannel.conf to: "
            '"ExceptionList": ["10.244.0.0/16", "10.96.0.0/12", "10.0.0.0/24"]'
        )

    def test_it_reports_an_external_destination_that_is_excepted_from_snat(self) -> None:
        conf = fixture_text("checks/healthy/cni.conf").replace(
            '"10.0.0.0/24"', '"10.0.0.0/24",\n            "172.16.0.0/12"'
        )
        snap = make_snapshot(
            files={"cni.conf": conf},
            connectivity=(ConnectivityResult("curl", "172.20.4.10:443", "pod", False, "curl: (28) timed out"),),
        )

        [finding] = failures(snap, CHECK)

        assert "contains 172.16.0.0/12, so traffic to 172.20.4.10:443 is not SNATed" in finding.summary
        assert finding.fix[0].endswith('"ExceptionList": ["10.244.0.0/16", "10.96.0.0/12", "10.0.0.0/24"]')

    def test_it_reads_a_v2_sdnbridge_conflist(self) -> None:
        conf = """{
  "cniVersion": "0.3.0",
  "name": "cbr0",
  "plugins": [{
    "type": "sdnbridge",
    "AdditionalArgs": [
      {"Name": "EndpointPolicy", "Value": {"Type": "OutBoundNAT", "Settings": {"Exceptions": ["10.244.0.0/16"]}}}
    ]
  }]
}"""
        snap = make_snapshot(files={"cni.conf": conf})

        [finding] = failures(snap, CHECK)

        assert (
            finding.evidence[0].excerpt == 'plugins[0].AdditionalArgs[0].Value.Settings.Exceptions: ["10.244.0.0/16"]'
        )

    def test_it_uses_the_cluster_dns_address_when_the_service_cidr_is_unknown(self) -> None:
        from dataclasses import replace

        conf = fixture_text("checks/healthy/cni.conf").replace('            "10.96.0.0/12",\n', "")
        view = replace(make_snapshot().cluster_view, service_cidr="")
        snap = make_snapshot(files={"cni.conf": conf}, cluster_view=view)

        [finding] = failures(snap, CHECK)

        assert "lacks the service subnet 10.96.0.10" in finding.summary
        assert '"<the service CIDR, which holds 10.96.0.10>"' in finding.fix[0]

    def test_it_accepts_a_list_covering_the_cluster_dns_address(self) -> None:
        from dataclasses import replace

        view = replace(make_snapshot().cluster_view, service_cidr="")
        assert failures(make_snapshot(cluster_view=view), CHECK) == []

    def test_it_says_what_it_needs_when_the_clusters_cidrs_are_unknown(self) -> None:
        conf = fixture_text("checks/healthy/cni.conf")
        snap = make_snapshot(
            files={"cni.conf": conf, "net-conf.json": None, "subnet.env": None},
            cluster_view=None,
            services=None,
            processes=None,
            ip_config=None,
        )

        [finding] = unknowns(snap, CHECK)

        assert "service CIDR" in finding.summary

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), CHECK) == []
