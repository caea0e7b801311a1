"""Text every database accepts: no NUL characters and no lone UTF-16 surrogates.

PostgreSQL refuses a NUL in a text value and any driver refuses a lone surrogate
(it cannot be encoded as UTF-8). Both can come from real nodes: a log file
cut in the middle of a UTF-16 character, a binary file read as text, a JSON
``\\u0000`` or ``\\ud800`` escape. Each such character becomes U+FFFD (the
replacement character), so the text keeps its length and says that something
was there.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_BAD = re.compile("[\x00\ud800-\udfff]")
# In JSON text, the only ways to write those characters are these escapes (a raw NUL is
# invalid JSON, a raw surrogate is invalid UTF-8): a document without them needs no walk.
_ESCAPED = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def clean_text(text: str) -> str:
    """``text`` with every NUL and lone surrogate replaced by U+FFFD."""
    return _BAD.sub(REPLACEMENT, text) if _BAD.search(text) else text


def clean(value: Any) -> tuple[Any, bool]:
    """(``value`` with every string, keys included, cleaned; whether anything changed).

    Works on decoded JSON (dicts, lists, strings, numbers, booleans, None).
    """
    if isinstance(value, str):
        cleaned = clean_text(value)
        return cleaned, cleaned is not value
    if isinstance(value, list):
        items = [clean(v) for v in value]
        if any(changed for _, changed in items):
            return [v for v, _ in items], True
        return value, False
    if isinstance(value, dict):
        pairs = [(clean(k), clean(v)) for k, v in value.items()]
        if any(kc or vc for (_, kc), (_, vc) in pairs):
            return {k: v for (k, _), (v, _) in pairs}, True
        return value, False
    return value, False


def json_may_need_cleaning(data: bytes) -> bool:
    """Whether JSON text ``data`` may decode to a NUL or a surrogate (cheap; false positives are harmless)."""
    return _ESCAPED.search(data) is not None
