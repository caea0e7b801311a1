"""One collection cycle: every probe, every known file, the new lines of every log -> a report.

The report is the ``node-report/v1`` shape documented in ``diagnostics.report``.
A probe that fails records its error and the report still goes; a parser
that cannot read an output leaves ``parsed`` empty and says why in
``parse_error`` (the dashboard parses ``output`` again with its own parsers).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agent import __version__
from agent.config import AgentConfig
from agent.runner import CommandResult, ProbeRunner
from agent.state import AgentState
from agent.tail import TailChunk, read_tail
from diagnostics.parsers.powershell import decode_output
from diagnostics.probes import KNOWN_FILES, PROBES, ProbeSpec
from diagnostics.report import REPORT_FORMAT

log = logging.getLogger(__name__)
MAX_FILE_BYTES = 256 * 1024


@dataclasses.dataclass
class Collection:
    """A built report and the log positions to commit once it is queued."""

    report: dict[str, Any]
    log_states: dict[str, dict[str, Any]]


class Collector:
    def __init__(self, config: AgentConfig, runner: ProbeRunner, state: AgentState) -> None:
        self.config = config
        self.runner = runner
        self.state = state

    def probes(self) -> tuple[ProbeSpec, ...]:
        return tuple(p for p in PROBES if p.id not in self.config.disabled_probes)

    def collect(self, *, connectivity: list[dict[str, Any]] | None = None) -> Collection:
        """Run one cycle. Does not touch the state: ``commit`` does, after the report is queued."""
        self.runner.begin_cycle()
        identity = self.runner.identity()
        report: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "cluster": self.config.cluster or identity.get("cluster", ""),
            "node": self.config.node or identity.get("node") or self.config.resolved_node(),
            "agent_version": __version__,
            "collected_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "agent_instance": self.state.instance,
            "sequence": self.state.sequence + 1,
            "dropped_reports": self.state.dropped,
            "probes": {p.id: self._probe(p) for p in self.probes()},
            "files": self._files(),
        }
        chunks = self._logs()
        report["logs"] = {
            kind: {"path": c.path, "offset": c.offset, "text": c.text, "rotated": c.rotated}
            for kind, c in chunks.items()
        }
        if connectivity:
            report["connectivity"] = connectivity
        return Collection(report, {kind: c.state for kind, c in chunks.items()})

    def commit(self, collection: Collection) -> None:
        """The report is queued: remember its sequence and how far the logs were read."""
        self.state.sequence = int(collection.report["sequence"])
        self.state.dropped -= int(collection.report.get("dropped_reports", 0))
        self.state.dropped = max(0, self.state.dropped)
        self.state.logs.update(collection.log_states)
        self.state.save()

    def _probe(self, probe: ProbeSpec) -> dict[str, Any]:
        try:
            result = self.runner.run_probe(probe, self.config.probe_timeout)
        except Exception as exc:  # a runner bug must cost one probe, not the report
            log.exception("probe %s failed to run", probe.id)
            result = CommandResult("", f"{type(exc).__name__}: {exc}")
        output = result.output
        if len(output.encode("utf-8")) > self.config.max_output_bytes:
            output = output.encode("utf-8")[: self.config.max_output_bytes].decode("utf-8", errors="ignore")
        entry: dict[str, Any] = {
            "command": probe.command,
            "output": output,
            "error": result.error,
            "duration_ms": result.duration_ms,
            "parsed": None,
        }
        if result.error is None:
            try:
                entry["parsed"] = to_jsonable(probe.parse(output))
            except ValueError as exc:
                entry["parse_error"] = str(exc)
        return entry

    def _files(self) -> dict[str, Any]:
        files: dict[str, Any] = {}
        names = [f.name for f in KNOWN_FILES] + [n for n in self.config.files if n not in {f.name for f in KNOWN_FILES}]
        for name in names:
            path = self.config.files.get(name, "")
            if not path:
                continue
            try:
                shown, data = self.runner.read_known_file(name, path)
            except OSError as exc:
                files[name] = {"path": path, "exists": True, "content": None, "error": exc.strerror or str(exc)}
                continue
            if data is None:
                files[name] = {"path": shown, "exists": False, "content": None, "error": None}
            else:
                text = decode_output(data[:MAX_FILE_BYTES])
                files[name] = {"path": shown, "exists": True, "content": text, "error": None}
        return files

    def _logs(self) -> dict[str, TailChunk]:
        chunks: dict[str, TailChunk] = {}
        for kind, source in self.runner.log_sources(self.config.logs).items():
            try:
                chunk = read_tail(
                    source.path,
                    source.local_path,
                    self.state.logs.get(kind),
                    max_bytes=self.config.max_log_bytes,
                    initial_bytes=self.config.initial_log_bytes,
                )
            except OSError as exc:
                log.warning("cannot read log %s (%s): %s", kind, source.local_path, exc)
                continue
            if chunk is not None:
                chunks[kind] = chunk
        return chunks


def to_jsonable(value: Any) -> Any:
    """Facts (frozen dataclasses, tuples, mappings) -> plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value
