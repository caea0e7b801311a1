"""The real-world corpus (tests/fixtures/real/): load each case and run it as a user would paste it.

Each case is a folder holding ``input.txt`` (an excerpt copied from a public thread) and
``expected.json``: ``source`` (repository, thread, date), ``must`` (check ids whose signal the
text shows) and ``must_not`` (ids the text does not support). The expectations were written from
the text and spec/CHECKS.md; they are never edited to match what the engine says. A ``must`` id
the engine cannot yet see stays in ``must`` (it counts as a miss in the benchmark) and is named
in ``known_miss`` with the reason, so the test tells a known gap from a new one.

``run_case`` diagnoses the excerpt exactly as the Diagnose page's paste box does: the text is
written under a name no recognition rule matches, so its kind comes from its content alone.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from diagnostics.bundle import BundleError
from diagnostics.cli import diagnose
from diagnostics.model import Status

CORPUS = Path(__file__).resolve().parent / "fixtures" / "real"
PASTE_NAME = "pasted.txt"


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    must: tuple[str, ...]
    must_not: tuple[str, ...]
    source: dict[str, str]
    known_miss: dict[str, str] = field(default_factory=dict)  # must id -> why the engine misses it


@dataclass
class Outcome:
    """What the engine said about one case: failing ids, undecided ids, and whether the input was read."""

    case: Case
    raised: set[str] = field(default_factory=set)
    undecided: set[str] = field(default_factory=set)
    unread: str = ""  # why the input was not read; empty when it was

    @property
    def missed(self) -> list[str]:
        return [c for c in self.case.must if c not in self.raised]

    @property
    def false_alarms(self) -> list[str]:
        return [c for c in self.case.must_not if c in self.raised]


def cases(root: Path = CORPUS) -> Iterator[Case]:
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
        yield Case(
            name=folder.name,
            text=(folder / "input.txt").read_text(encoding="utf-8"),
            must=tuple(expected.get("must", [])),
            must_not=tuple(expected.get("must_not", [])),
            source=dict(expected.get("source", {})),
            known_miss=dict(expected.get("known_miss", {})),
        )


def run_case(case: Case) -> Outcome:
    outcome = Outcome(case)
    with tempfile.TemporaryDirectory(prefix="wnd-corpus-") as tmp:
        path = Path(tmp) / PASTE_NAME
        path.write_text(case.text, encoding="utf-8")
        try:
            diagnosis = diagnose(path)
        except BundleError as exc:
            outcome.unread = str(exc)
            return outcome
    if not diagnosis.document.inputs:
        outcome.unread = "; ".join(str(s.get("reason", "")) for s in diagnosis.document.skipped) or "nothing read"
    for finding in diagnosis.document.findings:
        (outcome.raised if finding.status is Status.FAIL else outcome.undecided).add(finding.check)
    return outcome
