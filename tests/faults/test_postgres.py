"""Ingest and diagnosis on a real PostgreSQL, where text with a NUL is refused by the database.

A throwaway cluster (``tests.postgres``) serves a stack of its own: uvicorn, a worker, Redis.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.faults.harness import FaultStack, wait_until
from tests.postgres import Postgres, bin_dir, throwaway_postgres

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bin_dir() is None, reason="PostgreSQL binaries (initdb, pg_ctl) are not installed"),
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with throwaway_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def pg_stack(postgres: Postgres) -> Iterator[tuple[FaultStack, str]]:
    stack = FaultStack(database_url=postgres.url, sweep_every=None)
    stack.manage("migrate", "--noinput")
    token = stack.manage("create_token", "pg", "win-pg-01").strip()
    stack.start()
    try:
        yield stack, token
    finally:
        stack.stop()


def post(url: str, token: str, body: bytes, *, gzipped: bool = True) -> tuple[int, dict[str, Any], Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    request = urllib.request.Request(f"{url}/api/v1/reports", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def report_json(sequence: int, log_text: str, **extra: Any) -> str:
    return json.dumps(
        {
            "format": "node-report/v1",
            "cluster": "pg",
            "node": "win-pg-01",
            "agent_version": "0.1.0",
            "agent_instance": "pg-instance-1",
            "collected_at": "2026-11-24T10:15:40Z",
            "sequence": sequence,
            "probes": {"hns.networks": {"command": "Get-HnsNetwork", "output": "Name : cbr0\u0000\r\n"}},
            "files": {},
            "logs": {"kubelet": {"path": "C:\\k\\kubelet.log", "offset": 0, "text": log_text}},
            **extra,
        }
    )


def rows(postgres: Postgres, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres.url) as conn:
        return conn.execute(sql).fetchall()


def test_a_log_with_nul_and_lone_surrogates_is_stored_and_diagnosed_on_postgresql(
    pg_stack: tuple[FaultStack, str], postgres: Postgres
) -> None:
    stack, token = pg_stack
    # json.dumps writes the NUL and the lone surrogate as \u0000 and \ud800 escapes, as a
    # log cut in the middle of a UTF-16 character would arrive.
    text = 'I1124 10:15:32.1 4242 kubelet.go:1] "half \ud800 a character" \u0000\u0000 padding\r\n'
    status, body, _ = post(stack.url, token, gzip.compress(report_json(1, text).encode()))
    assert (status, body["status"]) == (202, "accepted")
    wait_until(
        lambda: rows(postgres, "select count(*) from dashboard_report where diagnosed_at is null") == [(0,)],
        60,
        "the report to be diagnosed",
    )
    (tail,) = rows(postgres, "select text from dashboard_logtail where kind = 'kubelet'")[0]
    assert "half \ufffd a character" in tail and "\ufffd\ufffd padding" in tail


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (gzip.compress(b"{}") + gzip.compress(b"{}"), 400, "after its first member"),
        (gzip.compress(b'{"sequence": ' + b"9" * 5000 + b"}"), 400, "not acceptable JSON"),
        (gzip.compress(b"[" * 100000 + b"]" * 100000), 400, "nested too deeply"),
        (gzip.compress(report_json(2**63 - 1, "x\r\n").encode()), 422, "sequence must be an integer"),
        (gzip.compress(report_json(-1, "x\r\n").encode()), 422, "sequence"),
        (gzip.compress(report_json(5, "x\r\n", dropped_reports=2**70).encode()), 422, "dropped_reports"),
    ],
    ids=["two-gzip-members", "huge-integer", "deep-nesting", "sequence-2**63-1", "negative-sequence", "huge-drops"],
)
def test_hostile_bodies_get_a_json_4xx_and_store_nothing(
    pg_stack: tuple[FaultStack, str], postgres: Postgres, body: bytes, status: int, says: str
) -> None:
    stack, token = pg_stack
    before = rows(postgres, "select count(*) from dashboard_report")
    got, answer, _ = post(stack.url, token, body)
    assert got == status and says in answer["error"]
    assert rows(postgres, "select count(*) from dashboard_report") == before


def test_a_database_that_is_down_is_a_json_503_with_retry_after_and_the_retry_is_stored(
    pg_stack: tuple[FaultStack, str], postgres: Postgres
) -> None:
    stack, token = pg_stack
    report = gzip.compress(report_json(100, "after the outage\r\n").encode())
    postgres.stop("immediate")
    try:
        status, answer, headers = post(stack.url, token, report)
    finally:
        postgres.start()
    assert status == 503 and "database" in answer["error"] and int(headers["Retry-After"]) > 0
    status, answer, _ = post(stack.url, token, report)
    assert (status, answer["status"]) == (202, "accepted")
