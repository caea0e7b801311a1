"""The agent's report, ``node-report/v1``: validation, and the snapshot built from it.

Shape (every key but ``format``, ``cluster``, ``node`` and ``collected_at`` optional)::

    {"format": "node-report/v1", "cluster": "prod-eu", "node": "win-01",
     "agent_version": "0.3.0", "collected_at": "2026-11-24T10:00:00Z", "sequence": 42,
     "dropped_reports": 0,
     "probes": {"hns.networks": {"command": "...", "output": "...", "error": null,
                                 "duration_ms": 120, "parsed": ..., "truncated": false,
                                 "timed_out": false, "cached": false}},
     "files": {"subnet.env": {"path": "C:\\run\\flannel\\subnet.env", "exists": true,
                              "content": "FLANNEL_NETWORK=...", "error": null}},
     "logs": {"kubelet": {"path": "C:\\k\\kubelet.log", "offset": 1024, "text": "...",
                          "rotated": false}},
     "connectivity": [{"kind": "ping", "target": "8.8.8.8", "origin": "pod",
                       "ok": false, "output": "..."}]}

``parsed`` is the agent's own reading, kept for people; the dashboard parses
``output`` itself with ``diagnostics.probes``. ``truncated`` (the output was cut
at the agent's cap) and ``timed_out`` (no answer within the cycle's budget) are
absent from reports of older agents; either makes the probe's fact unknown,
with the reason in ``NodeSnapshot.incomplete``. ``cached`` marks the repeated
result of a slow probe that did not run this cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from diagnostics.facts import ConnectivityResult
from diagnostics.snapshot import Fact, FileFact, LogHit, NodeSnapshot

REPORT_FORMAT = "node-report/v1"

# A Kubernetes node name is a DNS subdomain; a cluster name is ours, kept as strict.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_PROBES = 64
MAX_FILES = 32
MAX_LOGS = 32
MAX_CONNECTIVITY = 64


class ReportError(ValueError):
    """The report is not a valid ``node-report/v1``; the message says where and why."""


@dataclass(frozen=True)
class ProbeResult:
    output: str
    error: str | None = None
    command: str = ""
    duration_ms: float | None = None
    truncated: bool = False
    timed_out: bool = False


@dataclass(frozen=True)
class FileResult:
    path: str
    content: str | None  # None: the file does not exist (or could not be read: see error)
    error: str | None = None


@dataclass(frozen=True)
class LogTail:
    path: str
    text: str
    offset: int = 0  # byte offset in the file where ``text`` starts
    rotated: bool = False


@dataclass(frozen=True)
class NodeReport:
    cluster: str
    node: str
    collected_at: datetime
    agent_version: str = ""
    sequence: int | None = None
    dropped_reports: int = 0
    probes: Mapping[str, ProbeResult] = field(default_factory=dict)
    files: Mapping[str, FileResult] = field(default_factory=dict)
    logs: Mapping[str, LogTail] = field(default_factory=dict)
    connectivity: tuple[ConnectivityResult, ...] = ()


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportError(f"{where} must be an object")
    return value


def _str(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ReportError(f"{where} must be a string")
    return value


def _int(value: Any, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ReportError(f"{where} must be an integer >= {minimum}")
    return value


def _keyed(data: dict[str, Any], key: str, limit: int) -> dict[str, dict[str, Any]]:
    section = _obj(data.get(key, {}), key)
    if len(section) > limit:
        raise ReportError(f"{key} has {len(section)} entries; at most {limit} are accepted")
    for name in section:
        if not _KEY_RE.match(name):
            raise ReportError(f"{key} has an invalid name {name!r}")
    return {name: _obj(value, f"{key}.{name}") for name, value in section.items()}


def parse_report(data: Any) -> NodeReport:
    """Validate decoded JSON as ``node-report/v1``; raise ``ReportError`` on the first problem."""
    data = _obj(data, "the report")
    if data.get("format") != REPORT_FORMAT:
        raise ReportError(f"format must be {REPORT_FORMAT!r}, got {data.get('format')!r}")
    cluster = _str(data.get("cluster"), "cluster") or ""
    node = _str(data.get("node"), "node") or ""
    for label, name in (("cluster", cluster), ("node", node)):
        if not NAME_RE.match(name):
            raise ReportError(f"{label} {name!r} is not a valid name (lower-case letters, digits, '-' and '.')")
    stamp = _str(data.get("collected_at"), "collected_at") or ""
    try:
        collected_at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"collected_at {stamp!r} is not an ISO 8601 time") from None
    if collected_at.tzinfo is None:
        raise ReportError("collected_at must carry a time zone (e.g. a trailing Z)")

    probes = {
        name: ProbeResult(
            output=_str(p.get("output", ""), f"probes.{name}.output") or "",
            error=_str(p.get("error"), f"probes.{name}.error", optional=True),
            command=_str(p.get("command", ""), f"probes.{name}.command") or "",
            truncated=p.get("truncated") is True,
            timed_out=p.get("timed_out") is True,
        )
        for name, p in _keyed(data, "probes", MAX_PROBES).items()
    }
    files: dict[str, FileResult] = {}
    for name, f in _keyed(data, "files", MAX_FILES).items():
        exists = f.get("exists", True)
        if not isinstance(exists, bool):
            raise ReportError(f"files.{name}.exists must be true or false")
        content = _str(f.get("content"), f"files.{name}.content", optional=True)
        files[name] = FileResult(
            path=_str(f.get("path", name), f"files.{name}.path") or name,
            content=content if exists else None,
            error=_str(f.get("error"), f"files.{name}.error", optional=True),
        )
    logs = {
        name: LogTail(
            path=_str(lg.get("path", name), f"logs.{name}.path") or name,
            text=_str(lg.get("text", ""), f"logs.{name}.text") or "",
            offset=_int(lg.get("offset", 0), f"logs.{name}.offset"),
            rotated=bool(lg.get("rotated", False)),
        )
        for name, lg in _keyed(data, "logs", MAX_LOGS).items()
    }
    raw_tests = data.get("connectivity", [])
    if not isinstance(raw_tests, list) or len(raw_tests) > MAX_CONNECTIVITY:
        raise ReportError(f"connectivity must be a list of at most {MAX_CONNECTIVITY} results")
    tests = tuple(
        ConnectivityResult(
            kind=_str(t.get("kind"), f"connectivity[{i}].kind") or "",
            target=_str(t.get("target"), f"connectivity[{i}].target") or "",
            origin=_str(t.get("origin", "node"), f"connectivity[{i}].origin") or "node",
            ok=bool(t.get("ok")),
            output=_str(t.get("output", ""), f"connectivity[{i}].output") or "",
        )
        for i, t in enumerate(_obj(t, f"connectivity[{i}]") for i, t in enumerate(raw_tests))
    )
    sequence = data.get("sequence")
    return NodeReport(
        cluster=cluster,
        node=node,
        collected_at=collected_at,
        agent_version=_str(data.get("agent_version", ""), "agent_version") or "",
        sequence=None if sequence is None else _int(sequence, "sequence"),
        dropped_reports=_int(data.get("dropped_reports", 0), "dropped_reports"),
        probes=probes,
        files=files,
        logs=logs,
        connectivity=tests,
    )


def snapshot_from_report(
    report: NodeReport,
    *,
    log_texts: Mapping[str, tuple[str, str]] | None = None,
    base: NodeSnapshot | None = None,
    log_hits: Mapping[str, Sequence[LogHit]] | None = None,
) -> NodeSnapshot:
    """Build the snapshot the checks read from one report.

    ``log_texts`` maps a log kind to (path, text) and replaces the report's own
    log tails: the dashboard passes its rolling tail of each log so that checks
    see recent context, not only the lines new in this report. ``base`` carries
    facts from elsewhere (the Kubernetes API) that the report does not have.
    ``log_hits`` gives, per kind of ``log_texts``, hits already known to equal
    ``scan_text`` of that text (the dashboard scans only what each report appends).
    """
    from diagnostics.logs import scan_text
    from diagnostics.probes import PROBES_BY_ID

    facts: dict[str, Any] = {}
    incomplete: dict[str, str] = {}
    for probe_id, result in report.probes.items():
        spec = PROBES_BY_ID.get(probe_id)
        if spec is None:
            continue  # unknown probe (newer agent)
        if result.timed_out or result.truncated:
            incomplete[probe_id] = (
                f"{probe_id} did not answer in time ({result.error or 'timed out'})"
                if result.timed_out
                else f"the output of {probe_id} was cut at the agent's size cap"
            )
            continue
        if result.error:
            continue  # failed probe: that fact stays unknown
        try:
            facts[spec.field] = Fact(spec.parse(result.output), f"probe:{probe_id}")
        except ValueError:
            continue  # unreadable output: unknown, never a crash

    files = {
        name: FileFact(path=f.path, content=f.content, source=f.path)
        for name, f in report.files.items()
        if f.error is None
    }
    texts = log_texts if log_texts is not None else {k: (v.path, v.text) for k, v in report.logs.items()}
    logs_seen = {kind: path for kind, (path, _text) in texts.items()}
    known = log_hits or {}
    hits = tuple(
        hit
        for kind, (path, text) in texts.items()
        for hit in (known[kind] if kind in known else scan_text(text, source=path, kind=kind))
    )

    snap = base or NodeSnapshot(node=report.node)
    return replace(
        snap,
        node=report.node,
        cluster=report.cluster,
        collected_at=report.collected_at.isoformat().replace("+00:00", "Z"),
        agent_version=report.agent_version,
        files={**snap.files, **files},
        logs_seen={**snap.logs_seen, **logs_seen},
        log_hits=snap.log_hits + hits,
        connectivity=snap.connectivity + report.connectivity,
        incomplete={**snap.incomplete, **incomplete},
        unanswered=snap.unanswered | {p for p, r in report.probes.items() if r.timed_out and p in PROBES_BY_ID},
        **facts,
    )
