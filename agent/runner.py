"""The one seam between the agent and the node: running commands and reading files.

``PowerShellRunner`` runs on a Windows node. ``ScenarioRunner``
(``agent.scenario``) replays a recorded node, so the same collector runs on
Linux for the demo and the tests.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from diagnostics.parsers.powershell import decode_output
from diagnostics.probes import ProbeSpec

# Console output as UTF-8 so non-ASCII names survive; no progress bars in the output.
_PRELUDE = (
    "$ProgressPreference = 'SilentlyContinue'; "
    "[Console]::OutputEncoding = [System.Text.Encoding]::UTF8; "
    "$OutputEncoding = [System.Text.Encoding]::UTF8; "
)


@dataclass(frozen=True)
class CommandResult:
    output: str
    error: str | None = None
    duration_ms: float = 0.0


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
    def __init__(self, powershell: str = "powershell.exe", hns_module: str = "") -> None:
        self.powershell = powershell
        self.hns_module = hns_module

    def script(self, probe: ProbeSpec) -> str:
        script = _PRELUDE
        if self.hns_module and probe.id.startswith("hns."):
            script += f"Import-Module '{self.hns_module.replace(chr(39), chr(39) * 2)}' -DisableNameChecking; "
        return script + probe.command

    def run_probe(self, probe: ProbeSpec, timeout: float) -> CommandResult:
        # -EncodedCommand (UTF-16 LE, base64) sidesteps every quoting rule of cmd and PowerShell.
        encoded = base64.b64encode(self.script(probe).encode("utf-16-le")).decode("ascii")
        argv = [
            self.powershell,
            "-NoProfile",
            "-NonInteractive",
            "-ExecutionPolicy",
            "Bypass",
            "-EncodedCommand",
            encoded,
        ]
        return self.run_command(argv, timeout)

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
