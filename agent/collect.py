"""One collection cycle: every probe due, every known file, the new lines of every log -> a report.

The report is the ``node-report/v1`` shape documented in ``diagnostics.report``.
A probe that fails records its error and the report still goes; a parser
that cannot read an output leaves ``parsed`` empty and says why in
``parse_error`` (the dashboard parses ``output`` again with its own parsers).

Tiers: probes of the ``hourly`` tier run on the first cycle, then once
``slow_interval`` has passed (or at once after they failed); in between the
report repeats their last result, marked ``"cached": true``. Nothing is cut
silently: an output over the cap carries ``"truncated": true``, a probe that
did not answer within the cycle's budget ``"timed_out": true``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from agent import __version__
from agent.config import AgentConfig
from agent.presets import Layout, resolve_layout
from agent.runner import CommandResult, ProbeRunner
from agent.state import AgentState
from agent.tail import TailChunk, read_tail
from diagnostics.parsers.powershell import decode_output
from diagnostics.probes import HOURLY, KNOWN_FILES, MACHINE_ENV_ALLOW_LIST, PROBES, ProbeSpec
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
        self._slow: dict[str, tuple[float, dict[str, Any]]] = {}  # probe id -> (monotonic time, report entry)
        self.clock = time.monotonic
        self._layout: Layout | None = None

    @property
    def layout(self) -> Layout:
        """The node's preset and paths, found on first use (a scenario's markers are read then)."""
        if self._layout is None:
            known = {f.name: f.default_path for f in KNOWN_FILES}
            self._layout = resolve_layout(self.config.preset, self.config.files, self.runner.path_exists, known)
            log.info("node layout: preset %s", self._layout.preset)
        return self._layout

    def log_paths(self) -> dict[str, str]:
        """log kind -> path on the node, for this cycle."""
        return self.layout.log_paths(self.runner.list_dir, self.config.logs)

    def probes(self) -> tuple[ProbeSpec, ...]:
        return tuple(p for p in PROBES if p.id not in self.config.disabled_probes)

    def due(self) -> tuple[ProbeSpec, ...]:
        """The probes to run this cycle: every-cycle ones, and slow ones whose last result is old or failed."""
        now = self.clock()
        out = []
        for probe in self.probes():
            cached = self._slow.get(probe.id)
            if probe.tier == HOURLY and cached is not None and now - cached[0] < self.config.slow_interval:
                continue
            out.append(probe)
        return tuple(out)

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
            "probes": self._probes(),
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

    def _probes(self) -> dict[str, Any]:
        due = self.due()
        try:
            results = self.runner.run_probes(due, self.config.budget)
        except Exception as exc:  # a runner bug must cost this cycle's probes, not the report
            log.exception("probes failed to run")
            results = {p.id: CommandResult("", f"{type(exc).__name__}: {exc}") for p in due}
        now = self.clock()
        entries: dict[str, Any] = {}
        for probe in self.probes():
            if probe.id in results:
                entries[probe.id] = self._entry(probe, results[probe.id])
                if probe.tier == HOURLY:
                    if entries[probe.id]["error"] is None:
                        self._slow[probe.id] = (now, entries[probe.id])
                    else:
                        self._slow.pop(probe.id, None)
            elif probe.id in self._slow:
                entries[probe.id] = {**self._slow[probe.id][1], "cached": True}
        return entries

    def _entry(self, probe: ProbeSpec, result: CommandResult) -> dict[str, Any]:
        output = scrub_output(probe.id, result.output.replace("\x00", ""))
        truncated = result.truncated
        if len(output.encode("utf-8")) > self.config.max_output_bytes:
            output = output.encode("utf-8")[: self.config.max_output_bytes].decode("utf-8", errors="ignore")
            truncated = True
        entry: dict[str, Any] = {
            "command": probe.command,
            "output": output,
            "error": result.error,
            "duration_ms": result.duration_ms,
            "truncated": truncated,
            "timed_out": result.timed_out,
            "parsed": None,
        }
        if truncated:
            entry["parse_error"] = f"the output was cut at {len(output.encode('utf-8'))} bytes; not parsed"
        elif result.error is None:
            try:
                entry["parsed"] = to_jsonable(probe.parse(output))
            except ValueError as exc:
                entry["parse_error"] = str(exc)
        return entry

    def _files(self) -> dict[str, Any]:
        files: dict[str, Any] = {}
        for name, path in self.layout.files.items():
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
                text = decode_output(data[:MAX_FILE_BYTES]).replace("\x00", "")
                files[name] = {"path": shown, "exists": True, "content": text, "error": None}
                if len(data) > MAX_FILE_BYTES:
                    files[name]["truncated"] = True
        return files

    def _logs(self) -> dict[str, TailChunk]:
        chunks: dict[str, TailChunk] = {}
        for kind, source in self.runner.log_sources(self.log_paths()).items():
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


_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def strip_credentials(value: str) -> str:
    """A proxy URL without ``user:password@`` (``http://u:p@proxy:3128`` -> ``http://proxy:3128``)."""
    return _CREDENTIALS.sub("", value)


def scrub_output(probe_id: str, output: str) -> str:
    """What leaves the node: machine variables of the allow-list only, proxy values without credentials.

    The script already sends only the allow-list; this holds for scripts and recordings that send more.
    """
    if probe_id != "env.machine" or not output.strip():
        return output
    try:
        env = json.loads(output)
    except ValueError:
        return ""  # unreadable: sending it could leak what the allow-list keeps home
    if isinstance(env, list):  # a Name/Value table as ConvertTo-Json writes a hashtable's entries
        env = {
            str(e.get("Name", e.get("Key", ""))): e.get("Value", "")
            for e in env
            if isinstance(e, dict) and ("Name" in e or "Key" in e)
        }
    if not isinstance(env, dict):
        return ""
    allowed = {name.upper() for name in MACHINE_ENV_ALLOW_LIST}
    kept = {str(k): strip_credentials(str(v)) for k, v in env.items() if str(k).upper() in allowed}
    return json.dumps(kept, separators=(",", ":"))


def to_jsonable(value: Any) -> Any:
    """Facts (frozen dataclasses, tuples, mappings) -> plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value
