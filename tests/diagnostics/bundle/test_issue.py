"""ISSUE.md and the "new issue" link: the Kubernetes template, filled in, and within GitHub's sizes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from diagnostics.bundle.issue import FIELDS, MAX_BODY_CHARS, issue_fields, issue_url, render_issue
from diagnostics.bundle.writer import NodeBundle, issue_for
from diagnostics.model import Evidence, Finding, Severity, Status
from tests.diagnostics.bundle.exports import findings_of, scenario_report


def finding(i: int, excerpt: str = "E1124 10:15:32.123456 4242 kubelet.go:1] boom") -> Finding:
    return Finding(
        check=f"node.check-{i:03d}",
        severity=Severity.CRITICAL,
        status=Status.FAIL,
        node="win-node-01",
        title=f"Problem {i}",
        summary="Something is wrong.",
        evidence=(Evidence("C:\\k\\kubelet.log", excerpt, 12),),
        fix=("Restart-Service kubelet",),
    )


def test_it_fills_the_kubernetes_bug_report_template() -> None:
    report = scenario_report("subnet-env-missing")
    node = NodeBundle.from_report(report, findings=findings_of(report))
    title, body = render_issue(node="win-prod-02", cluster="prod-eu", findings=node.findings, facts=node.facts)
    assert "subnet.env" in title
    for _key, label in FIELDS:
        assert f"### {label}" in body
    assert "<details><summary>Evidence and fix</summary>" in body
    assert "Windows Server" in body and "containerd" in body.lower() and "flannel" in body.lower()
    assert body.rstrip().endswith("/sig windows")


def test_it_shrinks_to_fit_an_issue_body() -> None:
    many = [finding(i, "x" * 3000) for i in range(200)]
    _title, body = render_issue(node="win-node-01", cluster="prod-eu", findings=many, facts={})
    assert len(body) <= MAX_BODY_CHARS
    assert body.rstrip().endswith("/sig windows")
    assert "node.check-000" in body


def test_the_link_stays_under_the_url_limit_and_carries_the_fields() -> None:
    many = [finding(i, "y" * 2000) for i in range(100)]

    def fields(detail: str) -> dict[str, str]:
        return issue_fields("win-node-01", "prod-eu", many, {"os": "Windows Server 2022"}, [], detail=detail)

    url = issue_url("Windows node: Problem 0", fields, repository="kubernetes/kubernetes")
    assert len(url) <= 8000
    query = parse_qs(urlsplit(url).query)
    assert query["template"] == ["bug-report.yaml"] and query["title"] == ["Windows node: Problem 0"]
    assert "node.check-000" in query["problem"][0]


def test_without_a_template_the_link_carries_one_body() -> None:
    url = issue_url("t", issue_fields("n", "c", [finding(1)], {}, []), repository="me/repo", template="")
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == "/me/repo/issues/new"
    assert "template" not in query and query["body"][0].rstrip().endswith("/sig windows")


def test_the_link_is_redacted_like_the_bundle() -> None:
    leak = finding(1, "--token=7c3f9a1e2b4d6f80a1c3e5f7 from 10.0.1.11")
    title, fields = issue_for(NodeBundle(node="win-node-01", findings=[leak]))
    url = issue_url(title, fields)
    assert "7c3f9a1e2b4d6f80a1c3e5f7" not in url and "10.0.1.11" in url
