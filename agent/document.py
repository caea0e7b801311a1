"""Reading the document ``probes.ps1`` writes: ``node-probes/v1``.

The script writes one JSON document, one probe per line, each line as soon as
its probe finishes::

    {"format":"node-probes/v1","powershell":"5.1.17763.1","language":"ConstrainedLanguage","hns":"...","probes":[
    {"id":"os.version","output":"...","error":null,"ms":12,"truncated":false,"timed_out":false},
    {"end":true,"ms":812}]}

Contract of ``read_document``:
1. A complete document is read as JSON (UTF-8, with or without a BOM).
2. A document cut short (the agent ended a process that outlived its budget)
   is read line by line: every finished probe counts.
3. Every probe asked for gets a result. One missing from the document timed
   out: the first missing one is the probe that hung, the others never ran.
4. NUL characters never reach a result (a broken console or file system can
   produce them; stored text must not carry them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agent.runner import CommandResult

DOCUMENT_FORMAT = "node-probes/v1"


def _records(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, probe records) of a whole document, else of its complete lines."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("probes"), list):
        header = {k: v for k, v in doc.items() if k != "probes"}
        return header, [r for r in doc["probes"] if isinstance(r, dict) and "id" in r]
    header: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.split("\n")):
        line = line.strip()
        if number == 0 and line.endswith('"probes":['):
            try:
                header = json.loads(line[: -len(',"probes":[')] + "}")
            except ValueError:
                header = {}
            continue
        try:
            record = json.loads(line.rstrip(","))
        except ValueError:
            continue  # the line being written when the process was ended
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            records.append(record)
    return header, records


def _clean(value: Any) -> str:
    return str(value).replace("\x00", "") if value is not None else ""


def read_document(
    data: bytes, wanted: Sequence[str], *, budget: float, failure: str | None = None
) -> dict[str, CommandResult]:
    """One ``CommandResult`` per id of ``wanted`` from the script's output file (see the module docstring).

    ``failure`` is what the runner knows about the process (it could not start, it was ended
    after ``budget`` seconds, it exited with an error): it explains the probes the document lacks.
    """
    text = data.decode("utf-8-sig", errors="replace")
    header, records = _records(text)
    if header and header.get("format") not in (None, DOCUMENT_FORMAT):
        failure = f"unexpected document format {header.get('format')!r}"
        header, records = {}, []
    results: dict[str, CommandResult] = {}
    for record in records:
        probe_id = str(record["id"])
        if probe_id not in wanted:
            continue
        error = record.get("error")
        results[probe_id] = CommandResult(
            output=_clean(record.get("output")),
            error=None if error is None else _clean(error)[:4000],
            duration_ms=float(record.get("ms") or 0),
            truncated=bool(record.get("truncated")),
            timed_out=bool(record.get("timed_out")),
        )
    missing = [p for p in wanted if p not in results]
    started = bool(header) or bool(records)
    for position, probe_id in enumerate(missing):
        if not started:
            # The script never wrote a line: PowerShell did not start, or policy refused the script.
            results[probe_id] = CommandResult("", failure or "the probe script wrote nothing")
        elif position == 0:
            results[probe_id] = CommandResult(
                "", f"timed out: no answer within the cycle's budget of {budget:g} s", timed_out=True
            )
        else:
            results[probe_id] = CommandResult(
                "", f"not run: {missing[0]} was still running when the budget of {budget:g} s ran out", timed_out=True
            )
    return results
