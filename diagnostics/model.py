"""The vocabulary of findings, named once: severity, status, evidence, finding.

The ``findings/v1`` shape (spec/BUNDLE.md) is produced by ``Finding.to_dict`` and
read back by ``Finding.from_dict``; the API, the CLI, bundles and templates all
use it.
"""

from __future__ import annotations

import enum
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


@dataclass(frozen=True)
class Fail:
    """What a check function yields when the node fails it.

    ``subject`` distinguishes several findings of one check on one node (a pod
    and container, an endpoint id); the registry turns this into a ``Finding``.
    """

    summary: str
    evidence: tuple[Evidence, ...] = ()
    fix: tuple[str, ...] = ()
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
    fix: tuple[str, ...] = ()
    docs: str = DOCS_BASE
    subject: str = ""
    cluster: str = ""

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
            "docs": self.docs,
        }
        if self.subject:
            out["subject"] = self.subject
        if self.cluster:
            out["cluster"] = self.cluster
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
            fix=tuple(str(s) for s in data.get("fix", [])),
            docs=str(data.get("docs", DOCS_BASE)),
            subject=str(data.get("subject", "")),
            cluster=str(data.get("cluster", "")),
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
