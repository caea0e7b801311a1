"""Reading what PowerShell prints: encodings, tables, lists and ``ConvertTo-Json``.

These are the building blocks of every probe parser. They accept the output
as the agent captures it and as it sits in files written by ``>`` /
``Out-File`` (``collectlogs.ps1``): UTF-16 LE with a BOM or UTF-8, CRLF line
ends, padded tables truncated with ``...`` (PowerShell 7: ``…``), ``Format-List``
blocks, and JSON that may follow a table in the same file.

Contract: every public function either returns what it could read or raises
``ValueError`` with a message saying what was expected; nothing else escapes.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

_DASH_RUN = re.compile(r"-+")
_LIST_LINE = re.compile(r"^(\S[^:]*?)\s*:(?: (.*))?$")
_JSON_START = re.compile(r"^[ \t]*[\[{]", re.MULTILINE)
_DATE_RE = re.compile(r"^/Date\((-?\d+)\)/$")


def decode_output(data: bytes) -> str:
    """Bytes from a console or a file -> text with ``\\n`` line ends.

    UTF-16 LE/BE with a BOM (Windows PowerShell ``>``), UTF-8 with or without a
    BOM (PowerShell 7, the agent's own capture), and BOM-less UTF-16 LE (some
    ``Out-File -Encoding Unicode`` copies lose their BOM). Undecodable bytes
    become U+FFFD rather than failing: a half-readable output is still evidence.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"expected bytes, got {type(data).__name__}")
    raw = bytes(data)
    if raw.startswith(b"\xff\xfe"):
        text = raw[2:].decode("utf-16-le", errors="replace")
    elif raw.startswith(b"\xfe\xff"):
        text = raw[2:].decode("utf-16-be", errors="replace")
    elif raw.startswith(b"\xef\xbb\xbf"):
        text = raw[3:].decode("utf-8", errors="replace")
    elif looks_like_utf16le(raw):
        text = raw.decode("utf-16-le", errors="replace")
    else:
        text = raw.decode("utf-8", errors="replace")
    return normalize_newlines(text)


def looks_like_utf16le(raw: bytes) -> bool:
    """Whether BOM-less bytes are UTF-16 LE text (NULs at odd offsets, none at even ones)."""
    # ASCII text in UTF-16 LE has a NUL at every odd offset; real UTF-8 never has NULs.
    sample = raw[:400]
    if len(sample) < 4 or len(sample) % 2:
        return False
    odd_nuls = sample[1::2].count(0)
    return odd_nuls >= len(sample) // 2 * 0.9 and sample[0::2].count(0) == 0


def normalize_newlines(text: str) -> str:
    """CRLF (and lone CR) -> LF; a stray BOM at the start is dropped."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def to_text(text: Any) -> str:
    """Text or bytes (decoded as ``decode_output`` does) -> text with ``\\n`` line ends."""
    if isinstance(text, bytes | bytearray):
        return decode_output(bytes(text))
    if not isinstance(text, str):
        raise ValueError(f"expected text, got {type(text).__name__}")
    return normalize_newlines(text)


# -- tables ------------------------------------------------------------------


def _is_underline(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and set(stripped) <= {"-", " "} and "--" in stripped


def _dash_runs(underline: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _DASH_RUN.finditer(underline)]


def parse_tables(text: str | bytes) -> list[list[dict[str, str]]]:
    """Every padded table in ``text`` (``Format-Table`` output), each as a list of rows.

    A table is a header line followed by an underline of dash runs, one run per
    column, as long as the column's label. Rows end at a blank line or at the
    next table. Truncated cells keep their ``...`` (see ``is_truncated``).
    """
    lines = to_text(text).split("\n")
    tables: list[list[dict[str, str]]] = []
    i = 0
    while i < len(lines) - 1:
        header, underline = lines[i], lines[i + 1]
        if header.strip() and not _is_underline(header) and _is_underline(underline):
            j = i + 2
            body: list[str] = []
            while j < len(lines) and lines[j].strip():
                if j + 1 < len(lines) and _is_underline(lines[j + 1]):
                    break  # the next table's header
                body.append(lines[j])
                j += 1
            runs = _dash_runs(underline)
            names = [header[a:b].strip() or f"Column{k + 1}" for k, (a, b) in enumerate(runs)]
            cuts = _cuts(runs, [header, *body])
            tables.append([_row(line, names, cuts) for line in body])
            i = j
        else:
            i += 1
    return tables


def _cuts(runs: list[tuple[int, int]], lines: list[str]) -> list[int]:
    """Where each column starts.

    The dashes are as long as the label, not the column: left-aligned values run
    past their dashes and right-aligned numbers start before them. Between two
    dash runs the separator is a position blank in every line; the rightmost one
    is taken, which is right both when the next column is left-aligned (it
    starts right after) and when it is right-aligned (its widest value does).
    """
    cuts = [0]
    for (_a, end), (start, _b) in itertools.pairwise(runs):
        cut = start
        for pos in range(start - 1, end - 1, -1):
            if all(pos >= len(line) or line[pos] == " " for line in lines):
                cut = pos + 1
                break
        cuts.append(cut)
    return cuts


def _row(line: str, names: list[str], cuts: list[int]) -> dict[str, str]:
    row = {}
    for k, name in enumerate(names):
        stop = cuts[k + 1] if k + 1 < len(cuts) else len(line)
        row[name] = line[cuts[k] : stop].strip()
    return row


def parse_table(text: str | bytes) -> list[dict[str, str]]:
    """Rows of every table in ``text``, in order; ``ValueError`` when there is no table."""
    tables = parse_tables(text)
    if not tables:
        raise ValueError("no PowerShell table found (expected a header line underlined with '----')")
    return [row for table in tables for row in table]


def is_truncated(cell: str) -> bool:
    """Whether a table cell was cut to fit the console (``...`` or PowerShell 7's ``…``)."""
    return cell.endswith(("...", "\u2026"))


# -- Format-List -------------------------------------------------------------


def parse_list(text: str | bytes) -> list[dict[str, str]]:
    """``Format-List`` output: one dict per blank-line separated block of ``Key : Value`` lines.

    A value wrapped onto following indented lines is joined back: without a
    space when the previous line filled the console width (PowerShell cut it
    mid-word), with a space otherwise. Nested objects (``@{K=V; ...}``) and
    arrays (``{a, b}``) stay strings, to be read with ``parse_hashtable`` and
    ``split_array``.
    """
    lines = to_text(text).split("\n")
    width = max((len(line) for line in lines), default=0)
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last_key: str | None = None
    previous = ""
    for line in lines:
        if not line.strip():
            if current:
                blocks.append(current)
            current, last_key = {}, None
        elif line[0] in " \t" and last_key is not None:
            joiner = "" if len(previous) >= width else " "
            current[last_key] = current[last_key] + joiner + line.strip()
        else:
            m = _LIST_LINE.match(line)
            if m and line[0] not in " \t":
                last_key = m.group(1).strip()
                current[last_key] = (m.group(2) or "").strip()
            # else: a title line (e.g. "   ComputerName: X") before a block; ignored.
        previous = line
    if current:
        blocks.append(current)
    if not blocks:
        raise ValueError("no PowerShell list found (expected 'Key : Value' lines)")
    return blocks


def split_array(value: str) -> list[str]:
    """``{a, b, c}`` (how lists print arrays) -> ``["a", "b", "c"]``; nested ``@{...}`` kept whole.

    A plain value without braces is a one-item list; ``{}`` or empty is ``[]``.
    """
    value = value.strip()
    if value.startswith("{") and value.endswith("}"):
        value = value[1:-1]
    elif value.startswith("{") and is_truncated(value):
        value = value[1:]
    return [item for item in _split_top(value, ",") if item]


def parse_hashtable(value: str) -> dict[str, str]:
    """``@{Key=Value; Other=...}`` -> dict of strings (nested values kept as text)."""
    value = value.strip()
    if not value.startswith("@{"):
        raise ValueError(f"not a PowerShell hashtable: {value[:40]!r}")
    body = value[2:-1] if value.endswith("}") else value[2:]
    out: dict[str, str] = {}
    for part in _split_top(body, ";"):
        if "=" in part:
            key, _, val = part.partition("=")
            out[key.strip()] = val.strip()
    return out


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside braces."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


# -- ConvertTo-Json ----------------------------------------------------------


def split_table_and_json(text: str | bytes) -> tuple[str, str]:
    """Split a file that holds text (usually a table) followed by JSON, as collectlogs writes them.

    Returns ``(before, json_text)``; ``json_text`` is empty when no JSON document
    starts in the text. The JSON starts at the first line opening with ``{`` or
    ``[`` from which a JSON value (or, for a truncated file, its first element) decodes.
    """
    text = to_text(text)
    broken: int | None = None
    for m in _JSON_START.finditer(text):
        start = m.end() - 1
        try:
            json.JSONDecoder().raw_decode(text, start)
        except json.JSONDecodeError:
            if _salvage_array(text, start):
                return text[:start], text[start:]
            line = text[start : text.find("\n", start) if "\n" in text[start:] else len(text)].strip()
            if broken is None and (line in ("{", "[") or line.startswith(('{"', "[{", '["'))):
                broken = start  # how ConvertTo-Json starts a document: keep it, to report it unreadable
            continue
        except RecursionError:
            continue
        return text[:start], text[start:]
    if broken is not None:
        return text[:broken], text[broken:]
    return text, ""


def parse_json_values(text: str | bytes) -> list[dict[str, Any]]:
    """The objects of the ``ConvertTo-Json`` output(s) in ``text``.

    A single object gives ``[obj]``, an array its object elements; several
    documents appended with ``>>`` are concatenated; text before the first
    document (a table) is skipped. A truncated array yields its complete
    elements. ``ValueError`` when no JSON can be read at all.
    """
    _before, body = split_table_and_json(text)
    if not body.strip():
        raise ValueError("no JSON found in the output (expected ConvertTo-Json text)")
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = 0
    while pos < len(body):
        while pos < len(body) and body[pos] in " \t\n":
            pos += 1
        if pos >= len(body):
            break
        try:
            value, pos = decoder.raw_decode(body, pos)
        except json.JSONDecodeError as exc:
            partial = _salvage_array(body, pos)
            if partial:
                values.extend(partial)
            elif not values:
                raise ValueError(f"unreadable JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
            break
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        if isinstance(value, list):
            values.extend(value)
        else:
            values.append(value)
        # Text between appended documents (another table) is skipped up to the next document.
        nxt = _JSON_START.search(body, pos)
        if nxt is None:
            break
        pos = nxt.end() - 1
    objects = [v for v in values if isinstance(v, dict)]
    if values and not objects:
        raise ValueError("the JSON holds no objects")
    return objects


def _salvage_array(text: str, start: int) -> list[Any]:
    """The complete leading elements of a truncated JSON array starting at ``start``."""
    if start >= len(text) or text[start] != "[":
        return []
    decoder = json.JSONDecoder()
    items: list[Any] = []
    pos = start + 1
    while True:
        while pos < len(text) and text[pos] in " \t\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return items
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            return items
        items.append(value)


def is_json(text: str | bytes) -> bool:
    """Whether ``text`` contains a readable JSON document (possibly after a table)."""
    return bool(split_table_and_json(text)[1].strip())


# -- values ------------------------------------------------------------------


def get(obj: dict[str, Any], *names: str, default: Any = None) -> Any:
    """``obj[name]`` by any of ``names``, case-insensitively (PowerShell keys vary in case)."""
    for name in names:
        if name in obj:
            return obj[name]
    lowered = {k.lower(): v for k, v in obj.items() if isinstance(k, str)}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return default


def as_str(value: Any) -> str:
    """A JSON scalar as PowerShell would print it; ``None`` -> ``""``; dates read."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        # Windows PowerShell 5.1 serializes DateTime as {"value": "/Date(ms)/", "DateTime": "..."}.
        if "DateTime" in value or "value" in value:
            return as_str(value.get("value") if "value" in value else value.get("DateTime"))
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list):
        return ", ".join(as_str(v) for v in value)
    text = str(value)
    m = _DATE_RE.match(text)
    if m:
        return ms_to_iso(int(m.group(1)))
    return text


def ms_to_iso(ms: int) -> str:
    """Milliseconds since the epoch (``/Date(ms)/``) -> ISO 8601 UTC."""
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return str(ms)


def as_int(value: Any) -> int | None:
    """An integer from a JSON number or a numeric string; ``None`` otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def as_list(value: Any) -> list[Any]:
    """A JSON array, a single value (ConvertTo-Json unwraps one-element arrays) or a ``{a, b}`` string."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        if value.startswith("{") or "," in value:
            return split_array(value)
        return [value] if value else []
    return [value]


def records(text: str | bytes) -> list[dict[str, Any]]:
    """Objects from JSON if there is any, else from ``Format-List`` blocks, else from tables.

    This is how probe parsers accept both the agent's JSON and the text files
    people collect by hand.
    """
    text = to_text(text)
    if not text.strip():
        return []
    if is_json(text):
        return parse_json_values(text)
    tables = parse_tables(text)
    if tables and any(tables):
        return [row for table in tables for row in table]
    try:
        return list(parse_list(text))
    except ValueError:
        raise ValueError("output is neither JSON, a PowerShell table nor a PowerShell list") from None
