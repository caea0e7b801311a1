"""The one seam between the agent and the node: running commands and reading files.

``PowerShellRunner`` runs on a Windows node: one ``powershell.exe -File
probes.ps1`` per cycle for every probe due (see ``agent/probes.ps1`` and
``agent.document``). ``ScenarioRunner`` (``agent.scenario``) replays a
recorded node, so the same collector runs on Linux for the demo and the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diagnostics.parsers.powershell import decode_output
from diagnostics.probes import ProbeSpec

SCRIPT = Path(__file__).with_name("probes.ps1")
#: Seconds the script may run past its budget (starting PowerShell, writing the file) before it is ended.
GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class CommandResult:
    output: str
    error: str | None = None
    duration_ms: float = 0.0
    truncated: bool = False  # the output was cut at the size cap
    timed_out: bool = False  # the probe did not finish within the cycle's budget


@dataclass(frozen=True)
class LogSource:
    path: str  # as the node knows it (reported)
    local_path: str  # where the agent reads it (the same on a node; a replay copy in scenario mode)


class ProbeRunner(ABC):
    """What the collector needs from a node."""

    def begin_cycle(self) -> None:  # noqa: B027 - optional hook
        """Called before each collection (a scenario re-reads its file and appends to its logs)."""

    @abstractmethod
    def run_probe(self, probe: ProbeSpec, timeout: float) -> CommandResult: ...

    def run_probes(self, probes: Sequence[ProbeSpec], budget: float) -> dict[str, CommandResult]:
        """Every probe of this cycle within ``budget`` seconds; one result per probe, in any case."""
        return {p.id: self.run_probe(p, budget) for p in probes}

    def path_exists(self, path: str) -> bool:
        """Whether a path exists on the node (preset discovery)."""
        return False

    def list_dir(self, path: str) -> list[str]:
        """The names in a directory of the node; empty when it does not exist (pod log discovery)."""
        return []

    @abstractmethod
    def run_command(self, argv: list[str], timeout: float) -> CommandResult:
        """Run a fixed program with validated arguments (on-demand requests); never through a shell."""

    @abstractmethod
    def read_known_file(self, name: str, path: str) -> tuple[str, bytes | None]:
        """(path as reported, content or ``None`` when absent); ``OSError`` when unreadable."""

    @abstractmethod
    def log_sources(self, configured: dict[str, str]) -> dict[str, LogSource]: ...

    def identity(self) -> dict[str, str]:
        """Cluster/node names the runner knows (a scenario names its node)."""
        return {}


class PowerShellRunner(ProbeRunner):
    """Runs ``probes.ps1`` with ``-File``: one PowerShell process a cycle, whatever the number of probes."""

    def __init__(
        self, powershell: str = "powershell.exe", hns_module: str = "", script: str | os.PathLike[str] = SCRIPT
    ) -> None:
        self.powershell = powershell
        self.hns_module = hns_module
        self.script = Path(script)
        self.processes_started = 0  # PowerShell processes, for the benchmark

    def argv(self, probes: Sequence[ProbeSpec], budget: float, out: str) -> list[str]:
        argv = [self.powershell, "-NoProfile", "-NonInteractive", "-File", str(self.script), "-Out", out]
        argv += ["-Probes", ",".join(p.id for p in probes), "-Budget", str(max(1, int(budget)))]
        if self.hns_module:
            argv += ["-HnsModule", self.hns_module]
        return argv

    def run_probes(self, probes: Sequence[ProbeSpec], budget: float) -> dict[str, CommandResult]:
        from agent.document import read_document  # agent.document reads CommandResult from here

        if not probes:
            return {}
        fd, out = tempfile.mkstemp(prefix="wnd-probes-", suffix=".json")
        os.close(fd)
        try:
            self.processes_started += 1
            run = self.run_command(self.argv(probes, budget, out), budget + GRACE_SECONDS)
            try:
                data = Path(out).read_bytes()
            except OSError:
                data = b""
            return read_document(data, [p.id for p in probes], budget=budget, failure=run.error)
        finally:
            Path(out).unlink(missing_ok=True)

    def run_probe(self, probe: ProbeSpec, timeout: float) -> CommandResult:
        return self.run_probes([probe], timeout)[probe.id]

    def run_command(self, argv: list[str], timeout: float) -> CommandResult:
        started = time.monotonic()
        creationflags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                creationflags=creationflags,
            )
        except OSError as exc:
            return CommandResult("", f"cannot start {argv[0]}: {exc.strerror or exc}", _ms(started))
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            out, err = proc.communicate()
            return CommandResult(decode_output(out), f"timed out after {timeout:g} s", _ms(started))
        text = decode_output(out)
        if proc.returncode != 0:
            message = decode_output(err).strip() or f"exit status {proc.returncode}"
            return CommandResult(text, message[:4000], _ms(started))
        return CommandResult(text, None, _ms(started))

    def read_known_file(self, name: str, path: str) -> tuple[str, bytes | None]:
        try:
            return path, Path(path).read_bytes()
        except FileNotFoundError:
            return path, None
        except NotADirectoryError:
            return path, None

    def path_exists(self, path: str) -> bool:
        return Path(path).exists()

    def list_dir(self, path: str) -> list[str]:
        try:
            return sorted(entry.name for entry in Path(path).iterdir())
        except OSError:
            return []

    def log_sources(self, configured: dict[str, str]) -> dict[str, LogSource]:
        return {kind: LogSource(path, path) for kind, path in configured.items()}


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    # PowerShell may have started crictl/netsh: end the whole tree, not only powershell.exe.
    if sys.platform == "win32":
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(proc.pid)], capture_output=True, check=False)
    else:
        proc.kill()


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
