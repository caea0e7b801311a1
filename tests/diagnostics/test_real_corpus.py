"""Every real-world excerpt of tests/fixtures/real/ is read, and says what its expected.json says.

The expectations were decided from each excerpt and spec/CHECKS.md before the engine ran on it;
a failure here is a finding the engine misses or raises wrongly on real text, not a fixture to edit.
"""

from __future__ import annotations

import json

import pytest

from tests.real_corpus import CORPUS, Case, cases, run_case

CASES = list(cases())


def test_the_corpus_holds_at_least_sixty_excerpts_each_with_its_source() -> None:
    assert len(CASES) >= 60
    for case in CASES:
        assert case.source.get("repository") and case.source.get("thread") and case.source.get("date"), case.name
    assert sum(1 for c in CASES if not c.must) >= len(CASES) // 4  # negatives: text a naive matcher gets wrong


def test_every_expected_id_is_a_registered_check() -> None:
    from diagnostics.registry import all_checks

    known = set(all_checks())
    for folder in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        expected = json.loads((folder / "expected.json").read_text())
        assert set(expected["must"]) | set(expected["must_not"]) <= known, folder.name


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_excerpt_is_read_and_diagnosed_as_expected(case: Case) -> None:
    outcome = run_case(case)

    assert not outcome.unread, f"input not read: {outcome.unread}"
    assert set(case.known_miss) <= set(case.must), "known_miss names an id that is not in must"
    assert set(outcome.missed) == set(case.known_miss), (
        f"missed: {outcome.missed}; known misses: {sorted(case.known_miss)} "
        "(a known miss now found leaves known_miss; a new miss is a gap in the engine)"
    )
    assert outcome.false_alarms == [], f"raised although the text does not support it: {outcome.false_alarms}"
