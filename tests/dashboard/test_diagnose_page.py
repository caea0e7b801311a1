"""The Diagnose page: a bundle upload or a pasted excerpt gives the CLI's findings, as the node page's cards."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from dashboard.pages.analysis import AnalysisError, upload_name
from diagnostics.bundle.reader import decode_text
from diagnostics.cli import diagnose
from tests.diagnostics.bundle.builders import FIXTURES, make_targz, make_zip

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1] / "fixtures"
FLANNELD_LOG = FIXTURES / "exported" / "win-node-02-20240611T093015Z" / "logs" / "flanneld.log"


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Path:
    """Every temporary file of the request goes here (Django spools even small uploads to disk)."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    return folder


@pytest.fixture
def signed_in(client: Any, viewer: Any) -> Any:
    client.force_login(viewer)
    return client


def upload(client: Any, name: str, data: bytes, **extra: Any) -> Any:
    return client.post(
        "/diagnose", {"mode": "upload", "bundle": SimpleUploadedFile(name, data, "application/octet-stream")}, **extra
    )


def paste(client: Any, text: str, **extra: Any) -> Any:
    return client.post("/diagnose", {"mode": "paste", "text": text}, **extra)


def as_pasted(path: Path) -> str:
    """A file's text as a browser submits a textarea: decoded, CRLF line ends."""
    return decode_text(path.read_bytes()).replace("\r\n", "\n").replace("\n", "\r\n")


def cards(html: str) -> list[str]:
    return re.findall(r'<article class="finding [^"]*" id="[^"]*" data-check="([^"]+)"', html)


def test_a_stranger_is_sent_to_sign_in(client: Any) -> None:
    for response in (client.get("/diagnose"), paste(client, "Waiting for the Network to be created")):
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_every_role_gets_the_page_with_both_forms(signed_in: Any) -> None:
    html = signed_in.get("/diagnose").content.decode()
    assert '<a href="/diagnose" aria-current="page">Diagnose</a>' in html
    # Without JavaScript the forms post as they are; with htmx the upload shows its indicator.
    assert re.search(r'<form method="post" action="/diagnose" enctype="multipart/form-data"[^>]*hx-indicator=', html)
    assert 'name="bundle"' in html and 'name="text"' in html and 'id="upload-busy" class="htmx-indicator"' in html


@pytest.mark.parametrize(
    ("folder", "archive"),
    [
        ("exported", "win-node-02.zip"),
        ("aks", "akswin000002-20240611-093015_logs.tar.gz"),
        ("collectlogs", "collectlogs.tgz"),
        ("troubleshoot", "support-bundle.zip"),
    ],
)
def test_an_uploaded_bundle_gets_the_same_findings_as_the_command(
    signed_in: Any, scratch: Path, tmp_path: Path, folder: str, archive: str
) -> None:
    maker = make_zip if archive.endswith(".zip") else make_targz
    path = maker(FIXTURES / folder, tmp_path / archive)
    expected = diagnose(path).document.to_dict()

    response = upload(signed_in, archive, path.read_bytes())

    assert response.status_code == 200
    result = response.context["result"]
    assert result.document == expected
    html = response.content.decode()
    assert sorted(cards(html)) == sorted(f["check"] for f in expected["findings"])
    for item in expected["inputs"]:
        assert f'<tr data-input="{item["path"]}"><td><code>{item["path"]}</code></td><td>{item["kind"]}</td>' in html
    for item in expected["skipped"]:
        assert f'data-skipped="{item["path"]}"' in html
    assert list(scratch.iterdir()) == []


def test_an_aks_zip_keeps_its_name_so_the_node_is_named(signed_in: Any, scratch: Path, tmp_path: Path) -> None:
    path = make_zip(FIXTURES / "aks", tmp_path / "akswin000002-20240611-093015_logs.zip")
    response = upload(signed_in, path.name, path.read_bytes())
    assert [n.node for n in response.context["result"].nodes] == ["akswin000002"]
    assert "<h3>Node akswin000002</h3>" in response.content.decode()


def test_a_pasted_flanneld_log_says_flannel_waits_for_its_network(signed_in: Any, scratch: Path) -> None:
    response = paste(signed_in, as_pasted(FLANNELD_LOG))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Recognized as a flanneld log." in html
    assert 'data-check="flannel.waiting-for-network"' in html
    failing = [f.check_id for n in response.context["result"].nodes for f in n.failures]
    assert "flannel.waiting-for-network" in failing
    assert list(scratch.iterdir()) == []


def test_a_pasted_kubelet_sandbox_error_points_at_the_image_version(signed_in: Any) -> None:
    response = paste(signed_in, as_pasted(ROOT / "logs" / "kubelet-os-mismatch.log"))
    assert response.status_code == 200
    failing = {f.check_id for n in response.context["result"].nodes for f in n.failures}
    assert failing & {"pause.image-incompatible", "image.os-version-mismatch"}
    html = response.content.decode()
    assert "Recognized as a kubelet log." in html
    # Unsaved rows: the card, without the lifecycle forms that need a stored finding.
    assert "From this input" in html and "finding-acknowledge" not in html and "First seen" not in html


@pytest.mark.parametrize(
    ("fixture", "kind", "label"),
    [
        ("powershell/hns-networks-v1.json", "hns-networks", "Get-HnsNetwork output"),
        ("powershell/ipconfig-all.txt", "ip-config", "ipconfig /all output"),
        ("powershell/get-service.txt", "services", "Get-Service output"),
    ],
)
def test_a_pasted_command_output_is_recognized_by_its_content(
    signed_in: Any, fixture: str, kind: str, label: str
) -> None:
    response = paste(signed_in, as_pasted(ROOT / fixture))
    assert response.status_code == 200
    assert [i["kind"] for i in response.context["result"].inputs] == [kind]
    assert f"Recognized as {label}." in response.content.decode()


def test_a_paste_nothing_recognizes_says_so(signed_in: Any, scratch: Path) -> None:
    response = paste(signed_in, "Hello,\r\nthe node is slow since Tuesday. Any idea?\r\n", HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="diagnose-result"')
    assert "Nothing recognized" in html and "Get-HnsNetwork" in html
    assert list(scratch.iterdir()) == []


def test_an_empty_paste_is_refused(signed_in: Any, scratch: Path) -> None:
    response = paste(signed_in, "  \r\n ")
    assert response.status_code == 400
    assert "the box is empty" in response.content.decode()
    assert list(scratch.iterdir()) == []


def test_a_corrupt_archive_is_refused_and_nothing_is_kept(signed_in: Any, scratch: Path, tmp_path: Path) -> None:
    good = make_zip(FIXTURES / "exported", tmp_path / "good.zip").read_bytes()
    response = upload(signed_in, "node.zip", good[: len(good) // 2])
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'<p class="error" role="alert">node\.zip[^<]*(zip|archive)', html)
    assert str(scratch) not in html
    assert list(scratch.iterdir()) == []


def test_an_archive_without_diagnostic_data_is_not_a_bundle(signed_in: Any, scratch: Path, tmp_path: Path) -> None:
    folder = tmp_path / "holiday"
    folder.mkdir()
    (folder / "notes.md").write_text("# Trip\n")
    response = upload(signed_in, "holiday.tar.gz", make_targz(folder, tmp_path / "holiday.tar.gz").read_bytes())
    assert response.status_code == 400
    assert "not a bundle" in response.content.decode()
    assert list(scratch.iterdir()) == []


def test_an_upload_over_the_limit_is_refused(signed_in: Any, scratch: Path, tmp_path: Path, settings: Any) -> None:
    settings.WND_MAX_UPLOAD_BYTES = 4096
    data = make_zip(FIXTURES / "exported", tmp_path / "big.zip").read_bytes()
    assert len(data) > 4096
    response = upload(signed_in, "big.zip", data)
    assert response.status_code == 400
    assert "larger than the limit of 4 KiB" in response.content.decode()
    assert list(scratch.iterdir()) == []


def test_a_hostile_file_name_is_never_a_path(signed_in: Any, scratch: Path) -> None:
    response = upload(signed_in, "../../etc/passwd.zip", b"root:x:0:0:root:/root:/bin/bash\n")
    assert response.status_code == 400
    html = response.content.decode()
    assert "not a zip or tar archive" in html and "../" not in html
    assert list(scratch.iterdir()) == []
    assert not (scratch.parent / "etc").exists()


def test_only_archives_are_taken_as_uploads(signed_in: Any, scratch: Path) -> None:
    response = upload(signed_in, "kubelet.log", b"I0611 09:12:01.001017    3816 kubelet.go:1] started\n")
    assert response.status_code == 400
    assert "paste single files" in response.content.decode()
    assert list(scratch.iterdir()) == []


def test_a_form_without_a_file_is_refused(signed_in: Any) -> None:
    response = signed_in.post("/diagnose", {"mode": "upload"})
    assert response.status_code == 400
    assert "Choose a bundle to upload" in response.content.decode()


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd.zip", "passwd.zip"),
        ("..\\..\\Windows\\win.TGZ", "win.tgz"),
        (".hidden.zip", "bundle.zip"),
        ("node logs (1).tar.gz", "bundle.tar.gz"),
        ("..tar.gz", "bundle.tar.gz"),
        ("akswin000002-20240611-093015_logs.zip", "akswin000002-20240611-093015_logs.zip"),
    ],
)
def test_the_temporary_name_keeps_only_a_plain_name(name: str, safe: str) -> None:
    assert upload_name(name) == safe


@pytest.mark.parametrize("name", ["bundle.rar", "passwd", "", "kubelet.log"])
def test_a_name_without_an_archive_suffix_is_refused(name: str) -> None:
    with pytest.raises(AnalysisError, match=r"\.zip, \.tar\.gz or \.tgz"):
        upload_name(name)
