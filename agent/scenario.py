"""Replaying a recorded node: the ``ScenarioRunner``.

A scenario file (JSON, or TOML with the same keys) describes one node::

    {"format": "node-scenario/v1", "cluster": "prod-eu", "node": "win-prod-02",
     "description": "...",
     "probes": {"hns.networks": "probes/hns.networks.json",            # recorded output file
                "bitlocker": {"output": "", "error": "Get-BitLockerVolume : ..."}},
     "files": {"subnet.env": {"path": "C:\\\\run\\\\flannel\\\\subnet.env", "source": "files/subnet.env"},
               "SourceVip.json": {"path": "C:\\\\k\\\\SourceVip.json", "absent": true}},
     "logs": {"flanneld": {"path": "C:\\\\k\\\\flanneld.log", "source": "logs/flanneld.log",
                           "lines_per_cycle": 20, "loop_from": 11, "encoding": "utf-16-le"}},
     "document": "probes.json",   # or: the node-probes/v1 document probes.ps1 wrote (see agent.document)
     "preset": "kubeadm", "paths": ["C:\\\\var\\\\lib\\\\kubelet\\\\kubeadm-flags.env"],   # what discovery sees
     "requests": {"ping-vs-curl": {"ping": {"ok": false, "output": "..."}, "curl": {...}}},
     "variant": null,
     "variants": {"fixed": {"probes": {...}, "files": {...}, "logs": {...}}},
     "steps": [{"cycles": 3, "variant": null}, {"cycles": 3, "variant": "fixed"}]}

Paths are relative to the scenario file. Recorded outputs are files exactly
as PowerShell wrote them (UTF-16 LE with BOM or UTF-8, CRLF). The file is
re-read every cycle, so a test (or a person) switches a fault on and off by
rewriting ``variant``; without ``variant``, ``steps`` picks one by cycle number
(repeating). Logs are replayed into a work directory, ``lines_per_cycle`` lines
per cycle, with klog/logrus timestamps set to the replay time; after the last
line, ``loop_from`` (if any) makes the log repeat from that line, as a daemon
stuck in a retry loop does.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.document import read_document
from agent.runner import CommandResult, LogSource, ProbeRunner
from diagnostics.parsers.powershell import decode_output
from diagnostics.probes import ProbeSpec

log = logging.getLogger(__name__)

SCENARIO_FORMAT = "node-scenario/v1"
_KLOG_STAMP = re.compile(r"^([IWEF])\d{4} \d{2}:\d{2}:\d{2}\.\d{6}")
_LOGRUS_STAMP = re.compile(r'^time="[^"]*"')


class ScenarioError(ValueError):
    """The scenario file is unusable; the message says which key."""


def load_scenario(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {p}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8")) if p.suffix.lower() == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"scenario {p} is not valid {'TOML' if p.suffix == '.toml' else 'JSON'}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != SCENARIO_FORMAT:
        raise ScenarioError(f"scenario {p} must be an object with format {SCENARIO_FORMAT!r}")
    for key in ("cluster", "node"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise ScenarioError(f"scenario {p} needs a {key!r} name")
    for key in ("probes", "files", "logs", "variants", "requests"):
        if not isinstance(doc.get(key, {}), dict):
            raise ScenarioError(f"scenario {p}: {key!r} must be an object")
    return doc


class ScenarioRunner(ProbeRunner):
    def __init__(self, scenario: str | Path, work_dir: str | Path, *, now: Any = None) -> None:
        self.path = Path(scenario).resolve()
        self.base = self.path.parent
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.now = now or (lambda: datetime.now(UTC))
        self.cycle = 0
        self.doc = load_scenario(self.path)
        self.active = self._merge(self.doc, None)

    # -- cycle ------------------------------------------------------------

    def begin_cycle(self) -> None:
        try:
            self.doc = load_scenario(self.path)
        except ScenarioError as exc:
            log.warning("%s; replaying the previous version", exc)  # a test may be mid-rewrite
        self.cycle += 1
        self.active = self._merge(self.doc, self.variant())
        self._replay_logs()

    def variant(self) -> str | None:
        if self.doc.get("variant"):
            return str(self.doc["variant"])
        steps = self.doc.get("steps") or []
        total = sum(max(1, int(s.get("cycles", 1))) for s in steps if isinstance(s, dict))
        if not total:
            return None
        position = (self.cycle - 1) % total
        for step in steps:
            position -= max(1, int(step.get("cycles", 1)))
            if position < 0:
                return step.get("variant") or None
        return None

    def _merge(self, doc: dict[str, Any], variant: str | None) -> dict[str, dict[str, Any]]:
        active = {key: dict(doc.get(key) or {}) for key in ("probes", "files", "logs", "requests")}
        active["document"] = {"source": doc["document"]} if isinstance(doc.get("document"), str) else {}
        if variant:
            overrides = (doc.get("variants") or {}).get(variant)
            if not isinstance(overrides, dict):
                log.warning("scenario %s has no variant %r; replaying the base", self.path, variant)
                return active
            for key in ("probes", "files", "logs", "requests"):
                active[key].update(overrides.get(key) or {})
            if isinstance(overrides.get("document"), str):
                active["document"] = {"source": overrides["document"]}
        return active

    def identity(self) -> dict[str, str]:
        return {"cluster": str(self.doc["cluster"]), "node": str(self.doc["node"])}

    # -- probes and files -----------------------------------------------------

    def _read(self, relative: str) -> bytes:
        return (self.base / relative).read_bytes()

    def run_probes(self, probes: Sequence[ProbeSpec], budget: float) -> dict[str, CommandResult]:
        """From the recorded document when the scenario has one (as probes.ps1 wrote it), else probe by probe."""
        source = self.active["document"].get("source")
        if not source:
            return super().run_probes(probes, budget)
        try:
            data = self._read(str(source))
        except OSError as exc:
            return {p.id: CommandResult("", f"recorded document {source} unreadable: {exc.strerror}") for p in probes}
        return read_document(data, [p.id for p in probes], budget=budget)

    def _paths(self) -> list[str]:
        """Every path the recorded node has: ``paths``, present files, replayed logs."""
        paths = [str(p) for p in self.doc.get("paths") or []]
        paths += [str(f["path"]) for f in self.active["files"].values() if f.get("path") and not f.get("absent")]
        paths += [str(lg["path"]) for lg in self.active["logs"].values() if lg.get("path")]
        return paths

    def path_exists(self, path: str) -> bool:
        wanted = path.lower().rstrip("\\")
        return any(p.lower().rstrip("\\") == wanted or p.lower().startswith(wanted + "\\") for p in self._paths())

    def list_dir(self, path: str) -> list[str]:
        prefix = path.lower().rstrip("\\") + "\\"
        paths = self._paths()
        names = {p[len(prefix) :].split("\\")[0] for p in paths if p.lower().startswith(prefix)}
        return sorted(n for n in names if n)

    def run_probe(self, probe: ProbeSpec, timeout: float) -> CommandResult:
        spec = self.active["probes"].get(probe.id)
        if spec is None:
            return CommandResult("", f"probe {probe.id} is not recorded in scenario {self.path.name}")
        if isinstance(spec, str):
            spec = {"source": spec}
        output = str(spec.get("output", ""))
        if spec.get("source"):
            try:
                output = decode_output(self._read(str(spec["source"])))
            except OSError as exc:
                return CommandResult("", f"recorded output {spec['source']} unreadable: {exc.strerror}")
        return CommandResult(output, spec.get("error"), float(spec.get("duration_ms", 40.0)))

    def run_command(self, argv: list[str], timeout: float) -> CommandResult:
        """A recorded answer from ``requests``: ``{program: {target-or-"default": {"ok", "output"}}}``."""
        program = Path(argv[0].replace("\\", "/")).name.lower().removesuffix(".exe")
        answers = self.active["requests"].get(program) or {}
        answer = next(
            (a for key, a in answers.items() if key != "default" and any(key in arg for arg in argv[1:])), None
        )
        answer = answer or answers.get("default")
        if not isinstance(answer, dict):
            failure = _windows_failure(program, argv, pod_network=self._has_pod_network())
            if failure:
                return CommandResult("", failure, 5000.0)
            return CommandResult(_default_answer(program, argv), None, 25.0)
        ok = bool(answer.get("ok", True))
        return CommandResult(
            str(answer.get("output", "")), None if ok else str(answer.get("error", "exit status 1")), 25.0
        )

    def _has_pod_network(self) -> bool:
        """Whether the recorded ``hns.networks`` holds a pod network (L2Bridge, Overlay or L2Tunnel)."""
        spec = self.active["probes"].get("hns.networks")
        source = spec if isinstance(spec, str) else (spec or {}).get("source")
        try:
            text = self._read(source).decode("utf-8", "replace") if source else str((spec or {}).get("output", ""))
        except OSError:
            return False
        return re.search(r'"Type"\s*:\s*"(L2Bridge|Overlay|L2Tunnel)"', text, re.IGNORECASE) is not None

    def read_known_file(self, name: str, path: str) -> tuple[str, bytes | None]:
        spec = self.active["files"].get(name)
        if spec is None:
            return path, None
        shown = str(spec.get("path", path))
        if spec.get("absent"):
            return shown, None
        if "content" in spec:
            return shown, str(spec["content"]).encode("utf-8")
        return shown, self._read(str(spec["source"]))

    # -- logs -------------------------------------------------------------------

    def log_sources(self, configured: dict[str, str]) -> dict[str, LogSource]:
        return {
            kind: LogSource(str(spec.get("path", kind)), str(self.work_dir / f"{kind}.log"))
            for kind, spec in self.active["logs"].items()
        }

    def _replay_logs(self) -> None:
        progress_file = self.work_dir / "replay.json"
        try:
            progress = json.loads(progress_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            progress = {}
        stamp = self.now()
        for kind, spec in self.active["logs"].items():
            source = str(spec.get("source", ""))
            try:
                lines = decode_output(self._read(source)).splitlines()
            except OSError as exc:
                log.warning("scenario log %s unreadable: %s", source, exc)
                continue
            state = progress.get(kind) or {}
            position = int(state.get("next", 0)) if state.get("source") == source else 0
            chunk: list[str] = []
            loop_from = spec.get("loop_from")
            for _ in range(int(spec.get("lines_per_cycle", 20))):
                if position >= len(lines):
                    if loop_from is None or not 0 <= int(loop_from) < len(lines):
                        break
                    position = int(loop_from)
                chunk.append(_restamp(lines[position], stamp + timedelta(microseconds=len(chunk) * 1731)))
                position += 1
            progress[kind] = {"source": source, "next": position}
            if chunk:
                self._append(self.work_dir / f"{kind}.log", chunk, str(spec.get("encoding", "utf-8")))
        progress_file.write_text(json.dumps(progress), encoding="utf-8")

    @staticmethod
    def _append(path: Path, lines: list[str], encoding: str) -> None:
        if encoding.lower().replace("_", "-") in ("utf-16-le", "utf-16", "unicode"):
            data = "".join(line + "\r\n" for line in lines).encode("utf-16-le")
            if not path.exists() or path.stat().st_size == 0:
                data = b"\xff\xfe" + data  # as PowerShell's '>' starts a file
        else:
            data = "".join(line + "\n" for line in lines).encode("utf-8")
        with open(path, "ab") as fh:
            fh.write(data)


def _restamp(line: str, when: datetime) -> str:
    m = _KLOG_STAMP.match(line)
    if m:
        return f"{m.group(1)}{when:%m%d %H:%M:%S.%f}" + line[m.end() :]
    m = _LOGRUS_STAMP.match(line)
    if m:
        return f'time="{when:%Y-%m-%dT%H:%M:%S.%f}Z"' + line[m.end() :]
    return line


def _windows_failure(program: str, argv: list[str], *, pod_network: bool) -> str | None:
    """The error a Windows node gives for a request no scenario records, or None when it works.

    A NodePort never answers from the node itself (a known limitation); without a pod network
    (no HNS network for pods) neither Service ClusterIPs nor the cluster DNS answer.
    """
    target = argv[-1]
    name = _dns_name(program, argv)
    if program == "curl":
        parsed = urlsplit(target if "://" in target else f"http://{target}")
        port = parsed.port or 80
        if 30000 <= port <= 32767:
            return f"curl: (28) Failed to connect to {parsed.hostname} port {port}: Timeout was reached"
        try:
            private = ipaddress.ip_address(parsed.hostname or "").is_private
        except ValueError:
            private = False
        if private and not pod_network:
            return f"curl: (28) Failed to connect to {parsed.hostname} port {port}: Timeout was reached"
    if program == "nslookup" and not pod_network:
        return "DNS request timed out.\n    timeout was 2 seconds.\n*** Request to UnKnown timed-out"
    if name and not pod_network:
        return f"Resolve-DnsName : {name} : This operation returned because the timeout period expired"
    return None


def _dns_name(program: str, argv: list[str]) -> str | None:
    """The name a ``Resolve-DnsName`` command line (``agent.requests.resolve_command``) looks up."""
    if program not in ("powershell", "pwsh"):
        return None
    match = re.search(r"Resolve-DnsName -Name '([^']+)'", argv[-1])
    return match.group(1) if match else None


def _default_answer(program: str, argv: list[str]) -> str:
    """What the program prints on a healthy node, for requests a scenario does not record."""
    target = argv[-1]
    if program == "ping":
        return (
            f"\nPinging {target} with 32 bytes of data:\nReply from {target}: bytes=32 time=1ms TTL=128\n"
            f"Reply from {target}: bytes=32 time<1ms TTL=128\n\nPing statistics for {target}:\n"
            "    Packets: Sent = 2, Received = 2, Lost = 0 (0% loss),\n"
        )
    if program == "curl":
        return "HTTP 200 in 0.012s"
    if program == "nslookup":
        return (
            "Server:  kube-dns.kube-system.svc.cluster.local\nAddress:  10.96.0.10\n\n"
            f"Name:    {target}\nAddress:  10.96.0.1\n"
        )
    name = _dns_name(program, argv)
    if name:
        return json.dumps({"Name": name.rstrip("."), "IPAddress": "10.96.0.1"}, separators=(",", ":"))
    return ""
