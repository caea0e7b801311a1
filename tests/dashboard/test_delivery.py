"""Delivery: agent instances and duplicates at ingest, owed diagnoses, the sweeper, leases."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from dashboard import delivery, diagnosis
from dashboard.live import redis_client
from dashboard.models import Bundle, DiagnosisRun, LogTail, Node, Report, enroll
from dashboard.server.metrics import render
from tests.dashboard.reports import make_report

pytestmark = pytest.mark.django_db

LINE = 'I1124 10:15:3{n}.000001    4242 kubelet.go:2337] "line {n}"\r\n'


def status_of(response: Any) -> tuple[int, str]:
    body = json.loads(response.content)
    return response.status_code, body.get("status") or body.get("error", "")


def queued() -> int:
    return int(redis_client().llen("celery"))


# -- agent instances and duplicates ---------------------------------------------------------


def test_a_new_agent_instance_is_accepted_whatever_its_sequence(post_report: Any) -> None:
    assert status_of(post_report(make_report(sequence=900, agent_instance="old-instance"))) == (202, "accepted")
    # The node was reimaged: its agent starts again at 1, under a new instance id.
    for sequence in (1, 2, 3):
        assert status_of(post_report(make_report(sequence=sequence, agent_instance="new-instance")))[0] == 202
    assert Report.objects.count() == 4
    node = Node.objects.get()
    assert (node.agent_instance, node.last_sequence) == ("new-instance", 3)


def test_a_retried_report_is_answered_as_a_duplicate_and_counted(post_report: Any) -> None:
    post_report(make_report(sequence=5, agent_instance="a1"))
    assert status_of(post_report(make_report(sequence=5, agent_instance="a1"))) == (200, "duplicate")
    assert status_of(post_report(make_report(sequence=4, agent_instance="a1"))) == (200, "duplicate")
    assert Report.objects.count() == 1
    assert Node.objects.get().duplicate_reports == 2
    assert 'wnd_agent_duplicate_reports{cluster="prod-eu",node="win-node-01"} 2' in render()


@pytest.mark.parametrize("sequence", [2**63 - 1, 2**33 + 1, -1])
def test_an_absurd_sequence_is_refused_and_does_not_silence_the_node(post_report: Any, sequence: int) -> None:
    code, message = status_of(post_report(make_report(sequence=sequence)))
    assert code == 422 and "sequence" in message
    assert status_of(post_report(make_report(sequence=1)))[0] == 202


def test_an_agent_instance_that_is_not_a_plain_id_is_refused(post_report: Any) -> None:
    code, message = status_of(post_report(make_report(agent_instance="a b/../c")))
    assert code == 422 and "agent_instance" in message


# -- bodies every database accepts ------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True])
def test_nuls_and_lone_surrogates_never_reach_the_stored_report(post_report: Any, gzipped: bool) -> None:
    report = make_report(logs={"kubelet": 'E1124 "cut \ud83d here" \u0000\u0000 end\r\n'})
    report["files"]["subnet.env"]["content"] = "FLANNEL_MTU=1450\u0000\r\n"
    assert post_report(json.dumps(report).encode(), gzipped=gzipped).status_code == 202
    stored = Report.objects.get().document()
    assert stored["logs"]["kubelet"]["text"] == 'E1124 "cut \ufffd here" \ufffd\ufffd end\r\n'
    assert stored["files"]["subnet.env"]["content"] == "FLANNEL_MTU=1450\ufffd\r\n"


def test_a_surrogate_pair_is_a_character_and_is_kept(post_report: Any) -> None:
    post_report(make_report(logs={"kubelet": "pod \U0001f600 started\r\n"}))
    assert Report.objects.get().document()["logs"]["kubelet"]["text"] == "pod \U0001f600 started\r\n"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"sequence": ' + b"7" * 5000 + b"}", "not acceptable JSON"),
        (b"[" * 50000 + b"]" * 50000, "nested too deeply"),
        (b'{"a":' * 50000 + b"1" + b"}" * 50000, "nested too deeply"),
    ],
    ids=["huge-integer", "deep-list", "deep-object"],
)
def test_hostile_json_is_a_json_400(post_report: Any, body: bytes, says: str) -> None:
    response = post_report(body)
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert says in json.loads(response.content)["error"]
    assert Report.objects.count() == 0


def test_a_body_of_two_gzip_members_is_refused(post_report: Any) -> None:
    body = json.dumps(make_report()).encode()
    response = post_report(gzip.compress(body) + gzip.compress(b"{}"), HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400 and "first member" in json.loads(response.content)["error"]
    assert Report.objects.count() == 0


def test_a_method_other_than_post_is_a_json_405(client: Any) -> None:
    response = client.put("/api/v1/reports", data=b"{}")
    assert (response.status_code, response["Allow"]) == (405, "POST")
    assert "POST" in json.loads(response.content)["error"]


# -- owed diagnoses ----------------------------------------------------------------------------


def store(node: Node, n: int) -> Report:
    document = make_report(logs={"kubelet": LINE.format(n=n)})
    return Report.objects.create(
        node=node, collected_at="2026-11-24T10:15:40Z", payload=Report.pack(json.dumps(document).encode())
    )


def test_owed_reports_checked_together_keep_their_log_lines_in_order() -> None:
    node, _ = enroll("prod-eu", "win-a")
    store(node, 1), store(node, 2), store(node, 3)
    assert diagnosis.check_node(node.pk)
    tail = LogTail.objects.get(node=node).text
    assert tail.index('"line 1"') < tail.index('"line 2"') < tail.index('"line 3"')
    assert not Report.objects.filter(diagnosed_at__isnull=True).exists()
    # A task delivered late finds them done: nothing is appended twice.
    assert not diagnosis.check_node(node.pk)
    assert LogTail.objects.get(node=node).text == tail


def test_a_diagnosis_that_dies_half_way_leaves_the_report_owed_and_a_redelivery_does_it(monkeypatch: Any) -> None:
    node, _ = enroll("prod-eu", "win-a")
    report = store(node, 1)

    # A worker dying inside the transaction, in-process: the real SIGKILL is in tests/faults.
    def die(*_args: Any, **_kwargs: Any) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(diagnosis, "store_findings", die)
    with pytest.raises(SystemExit):
        diagnosis.check_node(node.pk)
    assert Report.objects.get(pk=report.pk).diagnosed_at is None
    assert Node.objects.get(pk=node.pk).last_diagnosed_report_id == 0
    monkeypatch.undo()
    assert diagnosis.check_node(node.pk)
    assert LogTail.objects.get(node=node).text.count('"line 1"') == 1


# -- the sweeper -------------------------------------------------------------------------------


def test_the_sweeper_queues_again_the_reports_the_broker_did_not_take_oldest_first(settings: Any) -> None:
    node, _ = enroll("prod-eu", "win-a")
    now = timezone.now()
    delivery.broker_lost()  # the mark is set: Redis has not lost its data since
    for n in (1, 2):
        store(node, n)  # never queued
    long_ago = store(node, 3)
    recent = store(node, 4)
    Report.objects.filter(pk=long_ago.pk).update(queued_at=now - timedelta(seconds=settings.WND_REQUEUE_AFTER + 1))
    Report.objects.filter(pk=recent.pk).update(queued_at=now)
    redis_client().delete("celery")
    assert delivery.requeue_reports(now) == 3
    bodies = [json.loads(m) for m in redis_client().lrange("celery", 0, -1)]
    # One check of the node covers its three owed reports.
    queued = [(b["headers"]["task"], b["headers"]["argsrepr"]) for b in bodies]
    assert queued == [("dashboard.check_node", f"({node.pk},)")]
    assert not Report.objects.filter(queued_at__isnull=True).exists()


def test_after_redis_lost_its_data_every_owed_report_is_queued_again() -> None:
    node, _ = enroll("prod-eu", "win-a")
    for n in (1, 2):
        Report.objects.filter(pk=store(node, n).pk).update(queued_at=timezone.now())
    delivery.broker_lost()
    redis_client().delete("celery", delivery.BROKER_MARK)  # what a restart without persistence does
    assert delivery.sweep()["reports_requeued"] == 2
    assert delivery.sweep()["reports_requeued"] == 0  # the mark is back: only what is due


def test_a_run_without_a_sign_of_life_for_the_lease_is_failed(settings: Any) -> None:
    node, _ = enroll("prod-eu", "win-a")
    now = timezone.now()
    old = now - timedelta(seconds=settings.WND_LEASE_SECONDS + 1)
    dead = DiagnosisRun.objects.create(node=node, started_at=old)
    alive = DiagnosisRun.objects.create(node=node, started_at=old, heartbeat_at=now)
    assert delivery.fail_dead_runs(now) == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.finished_at is not None and "worker stopped" in dead.error
    assert alive.finished_at is None
    diagnosis.run_now(dead.pk)  # its task, delivered late, leaves it as it is
    dead.refresh_from_db()
    assert "worker stopped" in dead.error


def test_a_bundle_whose_builder_died_is_built_again_then_failed(settings: Any) -> None:
    node, _ = enroll("prod-eu", "win-a")
    now = timezone.now()
    old = now - timedelta(seconds=settings.WND_LEASE_SECONDS + 1)
    bundle = Bundle.objects.create(state=Bundle.RUNNING, progress=0, heartbeat_at=old, attempts=1)
    bundle.nodes.add(node)
    before = queued()
    assert delivery.recover_bundles(now) == {"bundles_requeued": 1, "bundles_failed": 0}
    bundle.refresh_from_db()
    assert (bundle.state, bundle.progress) == (Bundle.PENDING, 0) and queued() == before + 1
    Bundle.objects.filter(pk=bundle.pk).update(state=Bundle.RUNNING, attempts=2, heartbeat_at=old)
    assert delivery.recover_bundles(now) == {"bundles_requeued": 0, "bundles_failed": 1}
    bundle.refresh_from_db()
    assert bundle.state == Bundle.FAILED and "request the bundle again" in bundle.error


def test_a_bundle_that_makes_progress_is_left_alone(settings: Any) -> None:
    node, _ = enroll("prod-eu", "win-a")
    bundle = Bundle.objects.create(state=Bundle.RUNNING, heartbeat_at=timezone.now(), attempts=1)
    bundle.nodes.add(node)
    assert delivery.recover_bundles(timezone.now()) == {"bundles_requeued": 0, "bundles_failed": 0}
