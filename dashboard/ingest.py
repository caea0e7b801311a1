"""``POST /api/v1/reports``: the agents' way in.

Order matters: authenticate, read at most the size limit, inflate at most the
inflated limit, decode, validate; only then store, in one transaction, one report
at a time in a process (``one_writer``). Every
refusal is a 4xx with a JSON ``{"error": ...}`` that says what to fix; a
database that cannot be reached now is a 503 with ``Retry-After`` (the agent
sends the report again), never a 500.

Delivery: an agent numbers its reports (``sequence``) within an instance
(``agent_instance``, new when the agent's state is lost). A report whose
sequence is not above the last one stored for the same instance is a retry of a
report already stored: it is answered ``200 duplicate`` and counted on the node.
A stored report is owed a diagnosis until one is done: its node's check is queued
after commit, and if the broker cannot take it the report is still accepted (the
sweeper of ``dashboard.delivery`` queues it again).

Work only when something changed: a report whose probes, files and connectivity verdicts
are those of the node's last stored report (``facts_digest``), and that brings no log line,
is only recorded (the node's last report time, agent version, dropped reports): no row, no
check, no page rendered; it is answered ``200 unchanged``. Any other report is stored and
its node queued for checking (``queue.check_node``: one task per node at most, which checks
every report that waited).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import zlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.http import HttpRequest, JsonResponse, UnreadablePostError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from dashboard import queue
from dashboard.cluster import enroll
from dashboard.models import AgentToken, Node, Report
from dashboard.server import retention
from diagnostics.report import NodeReport, ReportError, parse_report
from diagnostics.storable import clean, json_may_need_cleaning

log = logging.getLogger(__name__)

# Far above anything real (a report a second for 285 years), far below what the database holds.
MAX_SEQUENCE = 2**33
MAX_DROPPED = 2**31 - 1
INSTANCE_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
RETRY_AFTER_SECONDS = 10
# A token's last use is written at most this often: a report a minute per node is the norm.
TOKEN_USE_RESOLUTION = timedelta(minutes=5)
# How long a report waits for its turn to be written before it is answered 503 (the agent sends it again).
WRITE_WAIT_SECONDS = 10.0


class IngestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def unavailable(message: str) -> JsonResponse:
    """A transient failure on our side: the agent keeps the report and sends it again."""
    response = JsonResponse({"error": message}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def bearer_token(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def read_body(request: HttpRequest) -> tuple[bytes, bytes]:
    """(body as sent, body inflated): at most ``WND_MAX_REPORT_BYTES`` sent, ``..._INFLATED_BYTES`` inflated."""
    limit = settings.WND_MAX_REPORT_BYTES
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise IngestError(400, "Content-Length is not a number") from None
    if declared > limit:
        raise IngestError(413, f"report is {declared} bytes; the limit is {limit} (WND_MAX_REPORT_BYTES)")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise IngestError(413, f"report is larger than the limit of {limit} bytes (WND_MAX_REPORT_BYTES)")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "gzip":
        return body, inflate(body, settings.WND_MAX_REPORT_INFLATED_BYTES)
    if encoding not in ("", "identity"):
        raise IngestError(415, f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding")
    return body, body


def inflate(body: bytes, limit: int) -> bytes:
    """Gunzip without ever holding more than ``limit`` bytes of output (gzip bombs)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise IngestError(400, f"body is not valid gzip: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise IngestError(413, f"report inflates to more than {limit} bytes (WND_MAX_REPORT_INFLATED_BYTES)")
    if not inflater.eof:
        raise IngestError(400, "gzip body is truncated")
    if inflater.unused_data:
        # A second gzip member (or trailing bytes) would be stored and then break every reader.
        raise IngestError(400, "gzip body has data after its first member: send a single gzip member")
    return data


def decode(data: bytes) -> tuple[Any, bool]:
    """(the decoded document, whether NULs or lone surrogates were replaced in its text)."""
    try:
        document = json.loads(data)
    except UnicodeDecodeError:
        raise IngestError(400, "report is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise IngestError(400, f"report is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise IngestError(400, "report is nested too deeply to be a node report") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise IngestError(400, f"report is not acceptable JSON: {exc}") from None
    if not json_may_need_cleaning(data):
        return document, False
    try:
        return clean(document)
    except RecursionError:
        raise IngestError(400, "report is nested too deeply to be a node report") from None


def check_ranges(report: NodeReport, document: dict[str, Any]) -> str:
    """The agent instance of a parsed report whose numbers are within what the dashboard stores.

    Raises ``IngestError`` (422) for a value no agent sends.
    """
    if report.sequence is not None and not 0 <= report.sequence <= MAX_SEQUENCE:
        raise IngestError(422, f"sequence must be an integer from 0 to {MAX_SEQUENCE}")
    if not 0 <= report.dropped_reports <= MAX_DROPPED:
        raise IngestError(422, f"dropped_reports must be an integer from 0 to {MAX_DROPPED}")
    instance = document.get("agent_instance", "")
    if not isinstance(instance, str) or (instance and not INSTANCE_RE.match(instance)):
        raise IngestError(422, "agent_instance must be 1-64 letters, digits and '-'")
    return instance


def facts_digest(report: NodeReport) -> str:
    """A digest of what the checks read from a report besides its logs.

    Probe outputs and errors, files, and the verdict of each connectivity test (not its
    output, which carries timings): two reports with the same digest lead to the same findings.
    """
    facts = (
        sorted((name, p.output, p.error) for name, p in report.probes.items()),
        sorted((name, f.path, f.content, f.error) for name, f in report.files.items()),
        [(t.kind, t.target, t.origin, t.ok) for t in report.connectivity],
    )
    text = json.dumps(facts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def brings_log_lines(report: NodeReport) -> bool:
    return any(log.text or log.rotated for log in report.logs.values())


def queue_check(node_id: int, report_id: int) -> None:
    """Queue the check of the node's new report; a broker that cannot take it now leaves it owed, not lost."""
    try:
        queue.check_node(node_id)
    except Exception as exc:  # any broker failure: the report is stored, the sweeper queues it later
        log.warning("could not queue the check of report %s (%s); the sweeper will", report_id, exc)
        with contextlib.suppress(DatabaseError):  # else it is queued again after WND_REQUEUE_AFTER
            Report.objects.filter(pk=report_id).update(queued_at=None)


class Busy(Exception):
    """The process has been writing other reports for longer than ``WRITE_WAIT_SECONDS``."""


_WRITERS = threading.BoundedSemaphore(settings.WND_INGEST_WRITERS)


@contextlib.contextmanager
def one_writer() -> Iterator[None]:
    """Write one report at a time in this process (each request runs in a thread of its own;
    ``WND_INGEST_WRITERS`` allows more).

    A report's transaction is a few short statements. Run side by side, they only wait for
    each other in the database: SQLite lets one writer in and makes the others sleep and
    retry, so that a write, the worker's storing of findings included, could wait seconds
    behind a burst of reports; PostgreSQL is spared that but not the threads' contention.
    Taking turns here, each waits only for the transactions ahead of it. The check of a
    stored report is queued within its turn (on commit), which is why Redis calls time out
    within seconds (``live.redis_client``). Raises ``Busy`` when the turn does not come
    within ``WRITE_WAIT_SECONDS`` (the database or Redis is stalled).
    """
    if not _WRITERS.acquire(timeout=WRITE_WAIT_SECONDS):
        raise Busy
    try:
        yield
    finally:
        _WRITERS.release()


@csrf_exempt
def post_report(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = error(405, "send reports with POST")
        response["Allow"] = "POST"
        return response
    try:
        return receive(request)
    except UnreadablePostError as exc:  # the agent went away, or its connection broke, mid-body
        return error(400, f"the report could not be read: {exc}")
    except Busy:
        log.warning(
            "report not stored: it waited %s s for the reports before it to be written; "
            "the database (or Redis, which each stored report is queued in) answers slowly",
            WRITE_WAIT_SECONDS,
        )
        return unavailable("the dashboard is busy storing other reports; send the report again later")
    except (OperationalError, InterfaceError) as exc:
        # The database is down, locked or restarting: nothing was committed, the agent retries.
        log.warning("report not stored: %s", exc)
        return unavailable("the dashboard's database is not available; send the report again later")
    except DatabaseError as exc:  # refused by the database for what it is (e.g. the node was deleted)
        log.warning("report refused by the database: %s", exc)
        return error(422, f"the report could not be stored: {exc}")


def receive(request: HttpRequest) -> JsonResponse:
    raw_token = bearer_token(request)
    if not raw_token:
        return error(401, "missing bearer token: send 'Authorization: Bearer <node token>'")
    try:
        node, token = enroll.authenticate(raw_token)  # a node token, or a reviewed ServiceAccount token
    except enroll.Refused as exc:
        return error(exc.status, exc.message)
    try:
        sent, data = read_body(request)
        document, cleaned = decode(data)
        report = parse_report(document)
        instance = check_ranges(report, document)
    except IngestError as exc:
        return error(exc.status, exc.message)
    except ReportError as exc:
        return error(422, f"invalid node-report/v1: {exc}")
    except RecursionError:
        return error(400, "report is nested too deeply to be a node report")
    if (report.cluster, report.node) != (node.cluster.name, node.name):
        return error(403, f"this token belongs to {node.cluster.name}/{node.name}, not {report.cluster}/{report.node}")
    # Only the machine environment variables the checks need are kept (dashboard.server.retention).
    stripped = retention.strip_report(document)
    if cleaned or stripped:
        # What is stored is what every database accepts: NULs and lone surrogates replaced.
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    now = timezone.now()
    digest = facts_digest(report)
    seen = {
        "last_report_at": now,
        "agent_version": report.agent_version[:32],
        "dropped_reports": report.dropped_reports,
    }
    stored: Report | None = None
    with one_writer(), transaction.atomic():
        # The sequence makes delivery idempotent: an agent retrying a report that did
        # arrive gets a success, and nothing is stored twice. A new agent instance (its
        # state was lost) starts its own sequence, accepted whatever its numbers.
        if report.sequence is not None:
            fresh = Q(last_sequence__isnull=True) | Q(last_sequence__lt=report.sequence)
            if instance:
                fresh |= ~Q(agent_instance=instance)
            claimed = Node.objects.filter(pk=node.pk).filter(fresh)
            if not claimed.update(last_sequence=report.sequence, agent_instance=instance):
                Node.objects.filter(pk=node.pk).update(duplicate_reports=F("duplicate_reports") + 1)
                return JsonResponse({"status": "duplicate", "sequence": report.sequence}, status=200)
        if digest == node.facts_digest and not brings_log_lines(report):
            Node.objects.filter(pk=node.pk).update(**seen)
        else:
            stored = Report.objects.create(
                node=node,
                received_at=now,
                collected_at=report.collected_at,
                sequence=report.sequence,
                agent_instance=instance,
                agent_version=report.agent_version[:32],
                size_bytes=len(data),
                # A gzip body is kept as it came (it was just inflated once, within limits), unless cleaned.
                payload=sent if sent is not data and not (cleaned or stripped) else Report.pack(data),
                queued_at=now,  # cleared if the broker does not take it
            )
            Node.objects.filter(pk=node.pk).update(**seen, facts_digest=digest)
            report_id = stored.pk
            transaction.on_commit(lambda: queue_check(node.pk, report_id))
        if token is not None and (token.last_used_at is None or now - token.last_used_at >= TOKEN_USE_RESOLUTION):
            AgentToken.objects.filter(pk=token.pk).update(last_used_at=now)
    if stored is None:
        return JsonResponse({"status": "unchanged"}, status=200)
    return JsonResponse({"status": "accepted", "report": stored.pk}, status=202)
