from __future__ import annotations

import copy
from dataclasses import replace

from diagnostics.facts import OsInfo
from diagnostics.snapshot import Fact
from tests.diagnostics.builders import fixture_json, make_snapshot
from tests.diagnostics.checks.outcomes import failures

CHECK = "service.session-affinity-timeout"


def view_with_affinity(timeout: int):
    svc = copy.deepcopy(fixture_json("checks/healthy/service.json"))
    svc["spec"]["sessionAffinity"] = "ClientIP"
    svc["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": timeout}}
    return replace(make_snapshot().cluster_view, services=(svc,))


class TestSessionAffinityTimeout:
    def test_it_reports_a_timeout_windows_ignores(self) -> None:
        [finding] = failures(make_snapshot(cluster_view=view_with_affinity(600)), CHECK)

        assert finding.subject == "Service/default/iis-web"
        assert finding.evidence[0].excerpt == "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 600"

    def test_it_reports_client_ip_affinity_on_a_build_without_it(self) -> None:
        snap = make_snapshot(cluster_view=view_with_affinity(10800), os=Fact(OsInfo(17763, 6293), "probe:os.info"))

        [finding] = failures(snap, CHECK)

        assert "build 19551" in finding.summary

    def test_it_accepts_the_default_timeout(self) -> None:
        assert failures(make_snapshot(cluster_view=view_with_affinity(10800)), CHECK) == []

    def test_it_stays_quiet_on_a_healthy_node(self) -> None:
        assert failures(make_snapshot(), CHECK) == []

    def test_each_clusters_services_are_judged_by_their_own_content(self) -> None:
        """Nodes of one cluster share its Services, filtered once; another cluster's are filtered anew."""
        with_affinity = view_with_affinity(600)
        without = replace(with_affinity, services=tuple(copy.deepcopy(with_affinity.services)))
        without.services[0]["spec"].pop("sessionAffinity")

        assert len(failures(make_snapshot(cluster_view=with_affinity), CHECK)) == 1
        assert failures(make_snapshot(cluster_view=without), CHECK) == []
        assert len(failures(make_snapshot(cluster_view=with_affinity), CHECK)) == 1

    def test_it_reads_the_services_a_cluster_filtered_once_for_all_its_nodes(self) -> None:
        view = view_with_affinity(600)
        shared = replace(view, affinity_services=())  # the cluster's filtered list: none with affinity

        assert failures(make_snapshot(cluster_view=shared), CHECK) == []
        assert len(failures(make_snapshot(cluster_view=replace(view, affinity_services=view.services)), CHECK)) == 1
