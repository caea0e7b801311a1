"""``POST /api/v1/reports``: what is accepted, what is refused, and that refusals store nothing."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from django.test import override_settings

from dashboard.models import AgentToken, Node, Report
from tests.dashboard.reports import make_report

pytestmark = pytest.mark.django_db


def error_of(response: Any) -> str:
    return str(json.loads(response.content)["error"])


def test_it_accepts_a_valid_report_and_stores_it(post_report: Any, enrolled: Any) -> None:
    response = post_report(make_report(sequence=7))
    assert response.status_code == 202
    stored = Report.objects.get()
    assert stored.node == enrolled[0]
    assert stored.sequence == 7
    assert stored.document()["files"]["subnet.env"]["exists"] is True
    node = Node.objects.get()
    assert node.last_report_at is not None and node.last_sequence == 7


def test_it_accepts_a_gzipped_report(post_report: Any) -> None:
    assert post_report(make_report(), gzipped=True).status_code == 202
    assert Report.objects.count() == 1


def test_it_treats_a_repeated_sequence_as_a_duplicate(post_report: Any) -> None:
    assert post_report(make_report(sequence=3)).status_code == 202
    response = post_report(make_report(sequence=3))
    assert response.status_code == 200
    assert json.loads(response.content)["status"] == "duplicate"
    assert Report.objects.count() == 1


def test_it_rejects_malformed_json(post_report: Any) -> None:
    response = post_report(b'{"format": "node-report/v1", "node": ')
    assert response.status_code == 400
    assert "not valid JSON" in error_of(response)
    assert Report.objects.count() == 0


def test_it_rejects_a_wrong_schema_version(post_report: Any) -> None:
    response = post_report(make_report(format="node-report/v9"))
    assert response.status_code == 422
    assert "node-report/v1" in error_of(response)
    assert Report.objects.count() == 0


def test_it_rejects_a_report_with_a_bad_field(post_report: Any) -> None:
    response = post_report(make_report(probes={"hns.networks": {"output": 42}}))
    assert response.status_code == 422
    assert "probes.hns.networks.output must be a string" in error_of(response)


def test_it_rejects_an_unknown_token(post_report: Any) -> None:
    response = post_report(make_report(), token="wnd_not-a-real-token")
    assert response.status_code == 401
    assert "unknown or revoked" in error_of(response)
    assert Report.objects.count() == 0


def test_it_rejects_a_missing_token(client: Any, enrolled: Any) -> None:
    response = client.post("/api/v1/reports", data=make_report(), content_type="application/json")
    assert response.status_code == 401
    assert "missing bearer token" in error_of(response)


def test_it_rejects_a_revoked_token(post_report: Any, enrolled: Any) -> None:
    AgentToken.objects.update(revoked_at="2026-11-24T00:00:00Z")
    assert post_report(make_report()).status_code == 401


def test_it_rejects_a_report_for_another_node(post_report: Any) -> None:
    response = post_report(make_report(node="win-node-99"))
    assert response.status_code == 403
    assert "belongs to prod-eu/win-node-01" in error_of(response)
    assert Report.objects.count() == 0


@override_settings(WND_MAX_REPORT_BYTES=2048)
def test_it_rejects_an_oversized_report(post_report: Any) -> None:
    big = make_report(logs={"kubelet": "x" * 5000})
    response = post_report(big)
    assert response.status_code == 413
    assert "WND_MAX_REPORT_BYTES" in error_of(response)
    assert Report.objects.count() == 0


@override_settings(WND_MAX_REPORT_INFLATED_BYTES=64 * 1024)
def test_it_rejects_a_gzip_bomb(post_report: Any) -> None:
    bomb = gzip.compress(b"{" + b" " * (50 * 1024 * 1024) + b"}")
    assert len(bomb) < 100 * 1024
    response = post_report(bomb, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert "inflates to more than" in error_of(response)
    assert Report.objects.count() == 0


def test_it_rejects_a_body_that_is_not_gzip(post_report: Any) -> None:
    response = post_report(b"plain text", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400
    assert "not valid gzip" in error_of(response)


def test_it_rejects_a_truncated_gzip_body(post_report: Any) -> None:
    response = post_report(gzip.compress(json.dumps(make_report()).encode())[:-20], HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400


def test_it_rejects_an_unsupported_encoding(post_report: Any) -> None:
    response = post_report(make_report(), HTTP_CONTENT_ENCODING="br")
    assert response.status_code == 415


def test_it_refuses_get(client: Any) -> None:
    assert client.get("/api/v1/reports").status_code == 405


def test_a_refused_report_leaves_what_was_stored_intact(post_report: Any) -> None:
    assert post_report(make_report(sequence=1)).status_code == 202
    assert post_report(b"garbage").status_code == 400
    assert Report.objects.count() == 1
    assert Node.objects.get().last_sequence == 1


def test_a_report_that_adds_nothing_new_is_only_recorded(post_report: Any) -> None:
    assert post_report(make_report()).status_code == 202
    first_seen = Node.objects.get().last_report_at

    response = post_report(make_report(logs={"kubelet": ""}, agent_version="0.1.1"))

    assert response.status_code == 200 and json.loads(response.content)["status"] == "unchanged"
    assert Report.objects.count() == 1
    node = Node.objects.get()
    assert node.last_report_at is not None and first_seen is not None and node.last_report_at > first_seen
    assert node.agent_version == "0.1.1"


def test_a_report_with_new_log_lines_or_a_changed_fact_is_stored(post_report: Any) -> None:
    assert post_report(make_report()).status_code == 202
    assert post_report(make_report()).status_code == 202  # the same facts, new log lines
    assert post_report(make_report(subnet_env=None, logs={})).status_code == 202  # a fact changed
    assert post_report(make_report(subnet_env=None, logs={})).status_code == 200
    assert Report.objects.count() == 3


def test_a_report_waits_its_turn_to_be_written_and_is_answered_503_when_it_does_not_come(
    post_report: Any, monkeypatch: Any
) -> None:
    from dashboard import ingest

    monkeypatch.setattr(ingest, "WRITE_WAIT_SECONDS", 0.05)
    with ingest.one_writer():  # another report's transaction that does not end (a stalled database)
        response = post_report(make_report())
    assert response.status_code == 503 and response["Retry-After"]
    assert "busy storing other reports" in response.json()["error"]
    assert Report.objects.count() == 0
    assert post_report(make_report()).status_code == 202  # its turn comes once the other is written


def test_stored_reports_of_one_node_queue_one_check_while_it_waits(
    post_report: Any, enrolled: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from dashboard import live, queue

    broker = live.redis_client()
    broker.delete("celery", f"wnd:check-queued:{enrolled[0].pk}")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert post_report(make_report()).status_code == 202
    assert broker.llen("celery") == 1  # the one task checks the three reports
    queue.check_taken(enrolled[0].pk)  # the worker took it: the next report queues another
    with django_capture_on_commit_callbacks(execute=True):
        assert post_report(make_report()).status_code == 202
    assert broker.llen("celery") == 2
    broker.delete("celery")
