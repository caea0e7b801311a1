"""Bundle exports from the dashboard: the build, the pages and their permissions, the command, the live handler."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard import bundles
from dashboard.diagnosis import diagnose_report
from dashboard.models import Bundle, Node, Report, enroll
from diagnostics.cli import diagnose
from tests.diagnostics.bundle.exports import SECRETS, scenario_report, with_secrets

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def bundle_dir(settings: Any, tmp_path: Path) -> Path:
    settings.WND_BUNDLE_DIR = tmp_path / "bundles"
    return settings.WND_BUNDLE_DIR


@pytest.fixture
def node() -> Node:
    """win-prod-02 of prod-eu after its agent reported a missing subnet.env (and leaked a few secrets)."""
    target, _token = enroll("prod-eu", "win-prod-02")
    document = with_secrets(scenario_report("subnet-env-missing"))
    report = Report.objects.create(
        node=target,
        collected_at="2026-11-24T10:15:40Z",
        agent_version="0.1.0",
        payload=Report.pack(json.dumps(document).encode()),
    )
    assert diagnose_report(report.pk)
    return Node.objects.select_related("cluster").get(pk=target.pk)


def read_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_a_built_bundle_reads_back_into_the_findings_the_page_shows(node: Node, tmp_path: Path) -> None:
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    assert bundles.build(bundle.pk)
    bundle.refresh_from_db()
    assert (bundle.state, bundle.progress) == (Bundle.DONE, 100)
    path = bundles.file_path(bundle)
    assert path is not None and path.stat().st_size == bundle.size_bytes
    shown = sorted((f.check_id, f.subject, f.status) for f in node.findings.filter(resolved_at__isnull=True))
    read = diagnose(path)
    assert sorted((f.check, f.subject, f.status.slug) for f in read.document.findings) == shown
    assert "flannel.subnet-env-missing" in {c for c, _s, _st in shown}
    for name, data in read_members(path).items():
        assert not any(secret in data.decode() for secret in SECRETS), name
    assert {"bearer-token", "secret-value"} <= set(bundle.redactions)


def test_the_bundle_says_fresh_logs_could_not_be_fetched(node: Node) -> None:
    out = io.BytesIO()
    bundles.export_nodes([node], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        manifest = json.load(tf.extractfile(next(m for m in tf.getmembers() if m.name.endswith("manifest.json"))))  # type: ignore[arg-type]
        issue = tf.extractfile(next(m for m in tf.getmembers() if m.name.endswith("ISSUE.md"))).read().decode()  # type: ignore[union-attr]
    assert any("Fresh logs could not be fetched" in note for note in manifest["notes"])
    assert "Fresh logs could not be fetched" in issue
    assert issue.rstrip().endswith("/sig windows")


def test_a_build_is_claimed_once(node: Node) -> None:
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    assert bundles.build(bundle.pk)
    assert not bundles.build(bundle.pk)


def test_a_failed_build_says_why(node: Node, bundle_dir: Path) -> None:
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    bundle_dir.write_text("a file where the folder should be")
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    with pytest.raises(OSError):
        bundles.build(bundle.pk)  # the folder cannot even be created: the task fails loudly
    empty, _token = enroll("prod-eu", "win-empty")
    bundle_dir.unlink()
    failing = Bundle.objects.create()
    failing.nodes.set([empty])
    bundles.build(failing.pk)
    failing.refresh_from_db()
    assert failing.state == Bundle.FAILED
    assert "nothing is known" in failing.error
    assert not list(bundle_dir.glob(".partial-*"))


# -- pages and permissions ----------------------------------------------------------------


def test_an_operator_exports_a_node_and_downloads_it(client: Any, operator: Any, node: Node) -> None:
    client.force_login(operator)
    response = client.post("/clusters/prod-eu/nodes/win-prod-02/bundles", {"format": "zip", "redact_ips": "1"})
    assert response.status_code == 302
    bundle = Bundle.objects.get()
    assert (bundle.fmt, bundle.redact, bundle.redact_ips, bundle.requested_by) == ("zip", True, True, operator)
    bundles.build(bundle.pk)
    page = client.get("/clusters/prod-eu/nodes/win-prod-02/").content.decode()
    assert 'id="bundle-status"' in page and f"/bundles/{bundle.pk}/download" in page
    download = client.get(f"/bundles/{bundle.pk}/download")
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith('attachment; filename="win-prod-02-')
    assert b"".join(download.streaming_content)[:2] == b"PK"


def test_a_viewer_can_neither_export_nor_download(client: Any, viewer: Any, node: Node) -> None:
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    bundles.build(bundle.pk)
    client.force_login(viewer)
    assert client.post("/clusters/prod-eu/nodes/win-prod-02/bundles").status_code == 403
    assert client.get(f"/bundles/{bundle.pk}/download").status_code == 403
    assert client.get("/clusters/prod-eu/nodes/win-prod-02/issue").status_code == 403
    assert "Export bundle" not in client.get("/clusters/prod-eu/nodes/win-prod-02/").content.decode()


def test_a_stranger_is_sent_to_sign_in(client: Any, node: Node) -> None:
    response = client.get("/clusters/prod-eu/nodes/win-prod-02/issue")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_an_unfinished_bundle_is_not_downloadable(client: Any, operator: Any, node: Node) -> None:
    bundle = Bundle.objects.create()
    bundle.nodes.set([node])
    client.force_login(operator)
    assert client.get(f"/bundles/{bundle.pk}/download").status_code == 404
    assert "Waiting" in client.get(f"/bundles/{bundle.pk}/").content.decode()


def test_an_operator_exports_a_selection_from_the_fleet(client: Any, operator: Any, node: Node) -> None:
    other, _token = enroll("prod-eu", "win-other")
    client.force_login(operator)
    fleet = client.get("/").content.decode()
    assert f'name="node" value="{node.pk}"' in fleet and 'id="export-selection"' in fleet
    response = client.post("/bundles", {"node": [str(node.pk), str(other.pk)]})
    bundle = Bundle.objects.get()
    assert response["Location"] == f"/bundles/{bundle.pk}/"
    assert set(bundle.nodes.all()) == {node, other}


def test_open_issue_goes_to_github_with_the_template_prefilled(
    client: Any, operator: Any, node: Node, settings: Any
) -> None:
    settings.WND_ISSUE_REPOSITORY = "example/windows-issues"
    client.force_login(operator)
    response = client.get("/clusters/prod-eu/nodes/win-prod-02/issue")
    assert response.status_code == 302
    url = response["Location"]
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("github.com", "/example/windows-issues/issues/new")
    query = parse_qs(parts.query)
    assert query["template"] == ["bug-report.yaml"]
    assert "subnet.env" in query["title"][0]
    assert "flannel.subnet-env-missing" in query["problem"][0]
    assert len(url) <= 8000
    assert not any(secret in url for secret in SECRETS)


# -- the command --------------------------------------------------------------------------


def test_the_command_writes_a_bundle_of_named_nodes(node: Node, tmp_path: Path) -> None:
    out = io.StringIO()
    call_command(
        "bundle", "prod-eu/win-prod-02", "--out", str(tmp_path), "--redact-ips", stdout=out, stderr=io.StringIO()
    )
    path = Path(out.getvalue().strip())
    assert path.parent == tmp_path and path.name.startswith("win-prod-02-") and path.name.endswith(".tar.gz")
    manifest = json.loads(next(v for k, v in read_members(path).items() if k.endswith("manifest.json")))
    assert manifest["redaction"] == {"secrets": True, "ip_addresses": True, "host_names": False}
    assert manifest["redactions"]["ip-address"] > 0


def test_the_command_refuses_an_unknown_node(db: Any) -> None:
    with pytest.raises(CommandError, match="no node 'prod-eu/nope'"):
        call_command("bundle", "prod-eu/nope")
    with pytest.raises(CommandError, match="CLUSTER/NODE"):
        call_command("bundle", "nope")


# -- live --------------------------------------------------------------------------------


def test_the_node_consumer_renders_bundle_progress_for_operators(node: Node, operator: Any) -> None:
    from dashboard.consumers import NodeConsumer

    bundle = Bundle.objects.create(state=Bundle.RUNNING, progress=42)
    bundle.nodes.set([node])
    html = NodeConsumer()._render_bundle(bundle.pk)
    assert 'id="bundle-status"' in html and 'hx-swap-oob="true"' in html and "42%" in html
