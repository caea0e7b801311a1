"""Probes that timed out or were cut: node.hns-unresponsive, and unknown (never fail) for the checks that read them."""

from __future__ import annotations

from diagnostics.facts import Service
from diagnostics.model import Status
from diagnostics.report import parse_report, snapshot_from_report
from tests.diagnostics.builders import make_snapshot, with_services
from tests.diagnostics.checks.outcomes import failures, findings, unknowns

HUNG = "hns.endpoints did not answer in time (timed out: no answer within the cycle's budget of 90 s)"


def _report(**probes: dict) -> dict:
    return {
        "format": "node-report/v1",
        "cluster": "prod-eu",
        "node": "win-prod-01",
        "collected_at": "2026-12-04T10:00:00Z",
        "probes": probes,
    }


class TestHnsUnresponsive:
    def test_it_fires_when_the_hns_probes_time_out_and_the_rest_answers(self) -> None:
        snap = make_snapshot(
            incomplete={"hns.endpoints": HUNG, "hns.policies": "hns.policies did not answer in time"},
            unanswered=frozenset({"hns.endpoints", "hns.policies"}),
            services=with_services(Service("hns", "Running", "Manual", "svchost.exe -k NetSvcs")),
        )

        [finding] = failures(snap, "node.hns-unresponsive")

        assert "hns.endpoints, hns.policies" in finding.summary
        assert finding.evidence[0].excerpt == HUNG
        assert "hns: Running" in finding.evidence[-1].excerpt
        assert "Restart-Service hns" in finding.steps[-1].commands

    def test_it_stays_quiet_when_hns_answers(self) -> None:
        assert findings(make_snapshot(), "node.hns-unresponsive") == []

    def test_it_stays_quiet_when_nothing_on_the_node_answered(self) -> None:
        from diagnostics.probes import PROBES

        everything = {p.id: f"{p.id} did not answer in time" for p in PROBES}
        snap = make_snapshot(incomplete=everything, unanswered=frozenset(everything))
        assert findings(snap, "node.hns-unresponsive") == []

    def test_a_report_whose_hns_probes_timed_out_makes_the_finding(self) -> None:
        timed_out = {"output": "", "error": "timed out: no answer", "timed_out": True}
        report = parse_report(
            _report(
                **{"hns.networks": timed_out, "hns.endpoints": timed_out, "os.version": {"output": "", "error": None}}
            )
        )
        snap = snapshot_from_report(report)
        assert snap.unanswered == {"hns.networks", "hns.endpoints"}
        assert failures(snap, "node.hns-unresponsive")


class TestCutOutputIsNeverAFailure:
    def test_a_check_that_reads_a_cut_probe_says_unknown_with_the_reason(self) -> None:
        cut = "the output of hns.policies was cut at the agent's size cap"
        # Policies that look missing because the list was cut must not fail hns.lb-policy-missing.
        snap = make_snapshot(hns_policies=None, incomplete={"hns.policies": cut})

        assert failures(snap, "hns.lb-policy-missing") == []
        [finding] = unknowns(snap, "hns.lb-policy-missing")
        assert cut in finding.summary

    def test_a_report_marks_a_truncated_probe_incomplete_and_leaves_its_fact_unset(self) -> None:
        report = parse_report(_report(**{"hns.policies": {"output": '[{"ID":"a"', "error": None, "truncated": True}}))
        snap = snapshot_from_report(report)
        assert snap.hns_policies is None
        assert "cut" in snap.incomplete["hns.policies"]
        assert all(f.status is Status.UNKNOWN for f in findings(snap, "hns.lb-policy-missing"))

    def test_reports_of_older_agents_without_the_flags_read_as_before(self) -> None:
        report = parse_report(_report(**{"hns.policies": {"output": "[]", "error": None}}))
        snap = snapshot_from_report(report)
        assert snap.incomplete == {} and snap.hns_policies is not None
