"""The secrets corpus planted in a stored report: no secret in the dashboard's exports or its GitHub issue link."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from dashboard import bundles
from dashboard.diagnosis import check_node
from dashboard.models import Bundle, Node, Report, enroll
from tests.diagnostics.bundle.exports import scenario_report
from tests.diagnostics.bundle.secrets_corpus import load, plant, survivors

pytestmark = pytest.mark.django_db

# API objects come from the cluster source, not from reports: those entries are checked by
# tests/diagnostics/bundle/test_secrets_corpus.py, at the writer.
ENTRIES = [e for e in load() if e.where != "api"]


@pytest.fixture(autouse=True)
def bundle_dir(settings: Any, tmp_path: Path) -> Path:
    settings.WND_BUNDLE_DIR = tmp_path / "bundles"
    return settings.WND_BUNDLE_DIR


@pytest.fixture
def leaky_node() -> Node:
    """A node whose stored report carries every secret of the corpus (stored as is: no ingest filtering)."""
    target, _token = enroll("prod-eu", "win-prod-02")
    document = scenario_report("subnet-env-missing")
    plant(document, ENTRIES)
    report = Report.objects.create(
        node=target,
        collected_at="2026-11-24T10:15:40Z",
        agent_version="0.1.0",
        payload=Report.pack(json.dumps(document).encode()),
    )
    assert survivors({"stored": json.dumps(report.document())}, ENTRIES)  # planted
    assert check_node(target.pk)
    return Node.objects.select_related("cluster").get(pk=target.pk)


def members(path: Path) -> dict[str, str]:
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n).decode("utf-8") for n in zf.namelist()}
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read().decode("utf-8") for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_no_secret_of_the_corpus_survives_in_a_dashboard_export(leaky_node: Node, fmt: str) -> None:
    bundle = Bundle.objects.create(fmt=fmt)
    bundle.nodes.set([leaky_node])
    assert bundles.build(bundle.pk)
    bundle.refresh_from_db()
    path = bundles.file_path(bundle)
    assert path is not None
    files = members(path)
    assert any(name.endswith("ISSUE.md") for name in files)
    assert survivors(files, ENTRIES) == []


def test_no_secret_of_the_corpus_survives_in_the_open_an_issue_link(
    client: Any, operator: Any, leaky_node: Node
) -> None:
    client.force_login(operator)
    response = client.get("/clusters/prod-eu/nodes/win-prod-02/issue")
    assert response.status_code == 302
    url = response["Location"]
    assert survivors({"url": url, "decoded": unquote_plus(url)}, ENTRIES) == []
