"""Label selectors as the Kubernetes API reads them."""

from __future__ import annotations

import re

import pytest

from dashboard.selectors import SelectorError, parse_selector

LABELS = {"kubernetes.io/os": "windows", "pool": "gpu", "node.kubernetes.io/windows-build": "10.0.20348"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("kubernetes.io/os=windows", True),
        ("kubernetes.io/os==windows,pool=gpu", True),
        ("pool!=gpu", False),
        ("zone!=a", True),  # a missing key is "not a"
        ("pool in (gpu, general)", True),
        ("pool notin (gpu)", False),
        ("node.kubernetes.io/windows-build in (10.0.17763,10.0.20348)", True),
        ("pool", True),
        ("!pool", False),
        ("!legacy, pool", True),
    ],
)
def test_it_matches_like_the_api(selector: str, matches: bool) -> None:
    assert parse_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("pool in (gpu", "unbalanced '('"),
        ("pool in ()", "at least one value"),
        ("pool=,", "empty requirement"),
        ("-bad=x", "not a valid label key"),
        ("pool=gp u", "not a valid label key"),
        ("pool=$x", "not a valid label value"),
    ],
)
def test_it_refuses_what_the_api_refuses(selector: str, message: str) -> None:
    with pytest.raises(SelectorError, match=re.escape(message)):
        parse_selector(selector)
