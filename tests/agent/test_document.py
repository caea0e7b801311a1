"""Reading what probes.ps1 wrote: whole, cut short, or nothing at all."""

from __future__ import annotations

import json

from agent.document import read_document

WANTED = ["os.version", "services", "hns.networks", "hns.endpoints"]
HEADER = '{"format":"node-probes/v1","powershell":"5.1.17763.5830","language":"ConstrainedLanguage","hns":"x","probes":['


def _line(probe_id: str, output: str = "[]", **extra: object) -> str:
    record = {"id": probe_id, "output": output, "error": None, "ms": 12, "truncated": False, "timed_out": False}
    return json.dumps({**record, **extra}, separators=(",", ":")) + ","


def test_it_reads_a_whole_document_with_the_bom_windows_powershell_writes() -> None:
    lines = [HEADER] + [_line(p) for p in WANTED] + ['{"end":true,"ms":800}]}']
    data = b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8")
    json.loads(data.decode("utf-8-sig"))  # the script's document is valid JSON as a whole
    results = read_document(data, WANTED, budget=90)
    assert list(results) == WANTED
    assert all(r.error is None and r.output == "[]" and not r.timed_out for r in results.values())


def test_a_document_cut_short_keeps_every_finished_probe_and_names_the_one_that_hung() -> None:
    data = "\n".join([HEADER, _line("os.version"), _line("services"), '{"id":"hns.netw']).encode("utf-8")
    results = read_document(data, WANTED, budget=90)
    assert results["os.version"].error is None and results["services"].error is None
    assert results["hns.networks"].timed_out
    assert "no answer within the cycle's budget of 90 s" in (results["hns.networks"].error or "")
    assert results["hns.endpoints"].timed_out
    assert "hns.networks was still running" in (results["hns.endpoints"].error or "")


def test_when_the_script_wrote_nothing_every_probe_carries_the_reason() -> None:
    reason = "cannot start powershell.exe: Access is denied"
    results = read_document(b"", WANTED, budget=90, failure=reason)
    assert {r.error for r in results.values()} == {reason}
    assert not any(r.timed_out for r in results.values())


def test_the_script_marks_truncated_and_budget_skipped_probes() -> None:
    lines = [
        HEADER,
        _line("os.version"),
        _line("services", '[{"Name":"kub', truncated=True),
        _line("hns.networks", "", error="not run: the cycle's budget of 90 s was used up", timed_out=True),
    ]
    results = read_document("\n".join(lines).encode(), WANTED[:3], budget=90)
    assert results["services"].truncated and not results["services"].timed_out
    assert results["hns.networks"].timed_out


def test_nul_characters_never_reach_a_result() -> None:
    lines = [HEADER, _line("os.version", "Windows\u0000 Server", error="bad\u0000")]
    result = read_document("\n".join(lines).encode(), ["os.version"], budget=90)["os.version"]
    assert result.output == "Windows Server" and result.error == "bad"


def test_a_document_of_another_format_is_not_read() -> None:
    data = b'{"format":"other/v9","probes":[{"id":"os.version","output":"x"}]}'
    result = read_document(data, ["os.version"], budget=90)["os.version"]
    assert result.output == "" and "unexpected document format" in (result.error or "")
