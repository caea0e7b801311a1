"""The secrets corpus: no secret of it survives in an export (tar.gz, zip), its ISSUE.md or the issue link."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import pytest

from diagnostics.bundle.issue import issue_url
from diagnostics.bundle.redact import Redactor
from diagnostics.bundle.writer import NodeBundle, issue_for, redactor_json, write_bundle
from tests.diagnostics.bundle.exports import findings_of, scenario_report
from tests.diagnostics.bundle.secrets_corpus import Entry, load, plant, survivors

WHEN = datetime(2026, 11, 24, 10, 15, 40, tzinfo=UTC)
ENTRIES = load()


def test_the_corpus_holds_at_least_forty_secrets() -> None:
    assert len({s for e in ENTRIES for s in e.secrets}) >= 40
    assert len({e.id for e in ENTRIES}) == len(ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_each_secret_is_redacted_where_it_is_found_and_the_evidence_beside_it_is_kept(entry: Entry) -> None:
    redactor = Redactor()
    out = json.dumps(redactor_json(redactor, entry.obj)) if entry.where == "api" else redactor.text(entry.text)
    assert [s for s in entry.secrets if s in out] == []
    assert [k for k in entry.keep if k not in out] == []


@pytest.fixture(scope="module")
def planted() -> NodeBundle:
    report = scenario_report("subnet-env-missing")
    pods = plant(report, ENTRIES)
    raw = json.dumps(report) + json.dumps(pods)
    assert survivors({"report": raw}, ENTRIES) or not ENTRIES  # planted, so that their absence below means something
    return NodeBundle.from_report(
        report,
        findings=findings_of(report),
        cluster_objects={"pods.json": {"apiVersion": "v1", "kind": "PodList", "items": pods}},
        notes=["fresh logs could not be fetched"],
    )


def members(data: bytes, fmt: str) -> dict[str, str]:
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return {name: zf.read(name).decode("utf-8") for name in zf.namelist()}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: tf.extractfile(m).read().decode("utf-8") for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_no_secret_of_the_corpus_survives_in_an_export(planted: NodeBundle, fmt: str) -> None:
    out = io.BytesIO()
    write_bundle(out, [planted], fmt=fmt, now=WHEN)
    files = members(out.getvalue(), fmt)
    assert any(name.endswith("ISSUE.md") for name in files)
    assert survivors(files, ENTRIES) == []
    for name, text in files.items():
        if name.endswith(".json") and text.strip():  # an empty probe output stays empty
            json.loads(text)  # still valid JSON after redaction


@pytest.mark.parametrize("detail", ["full", "no-evidence", "titles"])
def test_no_secret_of_the_corpus_survives_in_the_issue_link(planted: NodeBundle, detail: str) -> None:
    title, fields = issue_for(planted)
    url = issue_url(title, fields, repository="kubernetes/kubernetes", template="bug-report.yaml")
    assert survivors({"url": url, "decoded": unquote_plus(url)}, ENTRIES) == []
    every_field: dict[str, Any] = fields(detail)
    assert survivors({k: str(v) for k, v in every_field.items()}, ENTRIES) == []
