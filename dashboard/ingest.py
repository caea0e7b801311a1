"""``POST /api/v1/reports``: the agents' way in.

Order matters: authenticate, read at most the size limit, inflate at most the
inflated limit, decode, validate; only then store, in one transaction. Every
refusal is a 4xx with a JSON ``{"error": ...}`` that says what to fix.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from dashboard import tasks
from dashboard.cluster import enroll
from dashboard.models import AgentToken, Node, Report
from diagnostics.report import ReportError, parse_report


class IngestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


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
    return data


def decode(data: bytes) -> Any:
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise IngestError(400, "report is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise IngestError(400, f"report is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


@csrf_exempt
@require_POST
def post_report(request: HttpRequest) -> JsonResponse:
    raw_token = bearer_token(request)
    if not raw_token:
        return error(401, "missing bearer token: send 'Authorization: Bearer <node token>'")
    try:
        node, token = enroll.authenticate(raw_token)  # a node token, or a reviewed ServiceAccount token
    except enroll.Refused as exc:
        return error(exc.status, exc.message)
    try:
        sent, data = read_body(request)
        document = decode(data)
        report = parse_report(document)
    except IngestError as exc:
        return error(exc.status, exc.message)
    except ReportError as exc:
        return error(422, f"invalid node-report/v1: {exc}")
    if (report.cluster, report.node) != (node.cluster.name, node.name):
        return error(403, f"this token belongs to {node.cluster.name}/{node.name}, not {report.cluster}/{report.node}")
    now = timezone.now()
    with transaction.atomic():
        # The sequence makes delivery idempotent: an agent retrying a report that
        # did arrive gets a success, and nothing is stored twice.
        if report.sequence is not None:
            claimed = Node.objects.filter(pk=node.pk).exclude(last_sequence__gte=report.sequence)
            if not claimed.update(last_sequence=report.sequence):
                return JsonResponse({"status": "duplicate", "sequence": report.sequence}, status=200)
        stored = Report.objects.create(
            node=node,
            received_at=now,
            collected_at=report.collected_at,
            sequence=report.sequence,
            agent_version=report.agent_version[:32],
            size_bytes=len(data),
            # A gzip body is kept as it came (it was just inflated once, within limits).
            payload=sent if sent is not data else Report.pack(data),
        )
        Node.objects.filter(pk=node.pk).update(
            last_report_at=now,
            agent_version=report.agent_version[:32],
            dropped_reports=report.dropped_reports,
        )
        if token is not None:
            AgentToken.objects.filter(pk=token.pk).update(last_used_at=now)
        transaction.on_commit(lambda: tasks.diagnose_report.delay(stored.pk))
    return JsonResponse({"status": "accepted", "report": stored.pk}, status=202)
