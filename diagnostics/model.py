"""The vocabulary of findings, named once: severity, status, evidence, finding.

The ``findings/v1`` shape (spec/BUNDLE.md) is produced by ``Finding.to_dict`` and
read back by ``Finding.from_dict``; the API, the CLI, bundles and templates all
use it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

DOCS_BASE = "https://kubernetes.io/docs/concepts/windows/"
FINDINGS_FORMAT = "findings/v1"


class Severity(enum.Enum):
    """How bad a failing check is; ``rank`` orders them (higher is worse)."""

    CRITICAL = ("critical", "Critical", "sev-critical", 3)
    WARNING = ("warning", "Warning", "sev-warning", 2)
    INFO = ("info", "Info", "sev-info", 1)

    def __init__(self, slug: str, label: str, css: str, rank: int) -> None:
        self.slug = slug
        self.label = label
        self.css = css
        self.rank = rank

    @classmethod
    def parse(cls, slug: str) -> Severity:
        for member in cls:
            if member.slug == slug:
                return member
        raise ValueError(f"unknown severity {slug!r}; expected one of critical, warning, info")

    @classmethod
    def ordered(cls) -> list[Severity]:
        """Worst first."""
        return sorted(cls, key=lambda s: -s.rank)


class Status(enum.Enum):
    """A finding either failed, or could not be decided for lack of data."""

    FAIL = ("fail", "Failing", "status-fail")
    UNKNOWN = ("unknown", "Unknown", "status-unknown")

    def __init__(self, slug: str, label: str, css: str) -> None:
        self.slug = slug
        self.label = label
        self.css = css

    @classmethod
    def parse(cls, slug: str) -> Status:
        for member in cls:
            if member.slug == slug:
                return member
        raise ValueError(f"unknown status {slug!r}; expected fail or unknown")


@dataclass(frozen=True)
class Evidence:
    """One piece of proof: where it came from and the exact excerpt or value."""

    source: str
    excerpt: str
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "excerpt": self.excerpt}
        if self.line is not None:
            out["line"] = self.line
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        line = data.get("line")
        return cls(str(data["source"]), str(data.get("excerpt", "")), int(line) if line is not None else None)


# First words of a line that is a command an SRE pastes, not an explanation.
_COMMAND_START = re.compile(
    r"^(?:[A-Z][a-z]+-[A-Z][A-Za-z]+\b|\$\w+\s*=|\[Environment\]|\.\\|[A-Za-z]:\\|"
    r"(?:kubectl|nssm|sc\.exe|curl(?:\.exe)?|crictl|ctr|docker|hnsdiag|netsh|ipconfig|reg|"
    r"tar|ping|nslookup|route|bcdedit|powershell|pwsh|icacls|sc)\s)"
)


def looks_like_command(line: str) -> bool:
    return bool(_COMMAND_START.match(line.strip()))


@dataclass(frozen=True)
class FixStep:
    """One step of a fix: what to do and why in words, and zero or more commands to paste, kept apart.

    ``as_text`` is the step as one string (the explanation, then one command per line), which is
    what ``findings/v1`` has always carried in ``fix``; ``from_text`` reads such a string back,
    so findings written before steps existed still split into words and commands.
    """

    text: str
    commands: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "commands": list(self.commands)}

    def as_text(self) -> str:
        return "\n".join(([self.text] if self.text else []) + list(self.commands))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixStep:
        return cls(str(data.get("text", "")), tuple(str(c) for c in data.get("commands") or []))

    @classmethod
    def from_text(cls, text: str) -> FixStep:
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            return cls("")
        if looks_like_command(lines[0]):
            return cls("", tuple(lines))
        head, rest = lines[0], lines[1:]
        if not rest:
            # "Explanation: Some-Command -With args" written on one line
            match = re.match(r"^(.*?[.:])\s+((?:[A-Z][a-z]+-[A-Z]|kubectl |nssm |sc\.exe |crictl |hnsdiag ).*)$", head)
            if match and looks_like_command(match.group(2)):
                return cls(
                    match.group(1).rstrip(":").rstrip() + ("." if match.group(1).endswith(":") else ""),
                    (match.group(2),),
                )
        return cls(head, tuple(rest))


def fix_steps(fix: tuple[FixStep | str, ...]) -> tuple[FixStep, ...]:
    return tuple(step if isinstance(step, FixStep) else FixStep.from_text(step) for step in fix)


@dataclass(frozen=True)
class Fail:
    """What a check function yields when the node fails it.

    ``subject`` distinguishes several findings of one check on one node (a pod
    and container, an endpoint id); the registry turns this into a ``Finding``.
    """

    summary: str
    evidence: tuple[Evidence, ...] = ()
    fix: tuple[FixStep | str, ...] = ()
    subject: str = ""
    title: str | None = None


@dataclass(frozen=True)
class Unknown:
    """What a check function yields when the data it needs is missing."""

    needs: tuple[str, ...]
    subject: str = ""


@dataclass(frozen=True)
class Finding:
    """A ``findings/v1`` finding."""

    check: str
    severity: Severity
    status: Status
    node: str
    title: str
    summary: str
    evidence: tuple[Evidence, ...] = ()
    fix: tuple[str, ...] = ()  # each step as one string: its explanation, then one command per line
    docs: str = DOCS_BASE
    subject: str = ""
    cluster: str = ""
    steps: tuple[FixStep, ...] = ()  # the same steps with words and commands apart
    caused_by: str = ""  # the check id of the finding on the same node that causes this one

    def __post_init__(self) -> None:
        # Either form may be given; each is derived from the other so both always agree.
        if self.steps and not self.fix:
            object.__setattr__(self, "fix", tuple(step.as_text() for step in self.steps))
        elif self.fix and not self.steps:
            object.__setattr__(self, "steps", tuple(FixStep.from_text(step) for step in self.fix))

    @property
    def key(self) -> tuple[str, str]:
        """Identity of a finding on one node across runs."""
        return (self.check, self.subject)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "severity": self.severity.slug,
            "status": self.status.slug,
            "node": self.node,
            "title": self.title,
            "summary": self.summary,
            "evidence": [e.to_dict() for e in self.evidence],
            "fix": list(self.fix),
            "fix_steps": [step.to_dict() for step in self.steps],
            "docs": self.docs,
        }
        if self.subject:
            out["subject"] = self.subject
        if self.cluster:
            out["cluster"] = self.cluster
        if self.caused_by:
            out["caused_by"] = self.caused_by
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            check=str(data["check"]),
            severity=Severity.parse(str(data["severity"])),
            status=Status.parse(str(data.get("status", "fail"))),
            node=str(data.get("node", "")),
            title=str(data.get("title", "")),
            summary=str(data.get("summary", "")),
            evidence=tuple(Evidence.from_dict(e) for e in data.get("evidence", [])),
            steps=(
                tuple(FixStep.from_dict(s) for s in data["fix_steps"])
                if isinstance(data.get("fix_steps"), list)
                else tuple(FixStep.from_text(str(s)) for s in data.get("fix", []))
            ),
            docs=str(data.get("docs", DOCS_BASE)),
            subject=str(data.get("subject", "")),
            cluster=str(data.get("cluster", "")),
            caused_by=str(data.get("caused_by", "")),
        )


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Worst first, failures before unknowns, then by check id and subject."""
    return sorted(
        findings,
        key=lambda f: (-f.severity.rank, f.status is Status.UNKNOWN, f.check, f.subject),
    )


@dataclass
class FindingsDocument:
    """The whole ``findings/v1`` object the CLI prints and bundles carry."""

    findings: list[Finding]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FINDINGS_FORMAT,
            "findings": [f.to_dict() for f in sort_findings(self.findings)],
            "inputs": self.inputs,
            "skipped": self.skipped,
        }
