"""Exported bundles: valid archives with safe names and true hashes, no secret left, and the same findings read back."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from diagnostics.bundle.archive import safe_member_path
from diagnostics.bundle.reader import read_bundle
from diagnostics.bundle.redact import RedactOptions, Redactor
from diagnostics.bundle.writer import LogSource, NodeBundle, write_bundle
from diagnostics.cli import diagnose
from tests.diagnostics.bundle.exports import SECRETS, findings_of, scenario_report, with_secrets

WHEN = datetime(2026, 11, 24, 10, 15, 40, tzinfo=UTC)
KEY = b"test-mapping-key"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def export(
    tmp_path: Path, report: dict[str, Any], *, fmt: str = "tar.gz", options: RedactOptions | None = None
) -> Path:
    node = NodeBundle.from_report(report, findings=findings_of(report), notes=["fresh logs could not be fetched"])
    out = tmp_path / f"bundle.{fmt}"
    with out.open("wb") as fh:
        write_bundle(fh, [node], fmt=fmt, options=options, now=WHEN)
    return out


def members(path: Path) -> dict[str, bytes]:
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            return {name: zf.read(name) for name in zf.namelist()}
    with tarfile.open(path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


def keys(findings: list[Any]) -> list[tuple[str, str, str, str]]:
    return sorted((f.check, f.subject, f.severity.slug, f.status.slug) for f in findings)


@pytest.fixture(scope="module")
def leaky() -> dict[str, Any]:
    return with_secrets(scenario_report("subnet-env-missing"))


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_it_writes_the_layout_of_the_spec(tmp_path: Path, leaky: dict[str, Any], fmt: str) -> None:
    files = members(export(tmp_path, leaky, fmt=fmt))
    root = "win-prod-02-20261124T101540Z/"
    names = {n.removeprefix(root) for n in files}
    assert all(n.startswith(root) for n in files)
    assert {"manifest.json", "findings.json", "ISSUE.md", "node/probes.json", "files/cni.conf"} <= names
    assert {"logs/kubelet.log", "logs/flanneld.log", "node/hnsnetwork.json", "node/services.json"} <= names
    manifest = json.loads(files[root + "manifest.json"])
    assert manifest["format"] == "windows-node-bundle/v1"
    assert (manifest["node"], manifest["cluster"], manifest["agent_version"]) == ("win-prod-02", "prod-eu", "0.1.0")
    probes = json.loads(files[root + "node/probes.json"])
    assert set(probes["hns.networks"]) >= {"output", "error"}


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_its_manifest_lists_every_file_with_its_sha256(tmp_path: Path, leaky: dict[str, Any], fmt: str) -> None:
    files = members(export(tmp_path, leaky, fmt=fmt))
    root = next(iter(files)).split("/")[0]
    manifest = json.loads(files[f"{root}/manifest.json"])
    listed = {f["path"]: f for f in manifest["files"] if "sha256" in f}
    assert set(listed) == {n.split("/", 1)[1] for n in files} - {"manifest.json"}
    for path, item in listed.items():
        data = files[f"{root}/{path}"]
        assert item["sha256"] == hashlib.sha256(data).hexdigest()
        assert item["bytes"] == len(data)
    absent = {f["name"]: f for f in manifest["files"] if f.get("exists") is False}
    # The Flannel node lacks its subnet.env, and has none of the other plugins' or kubeadm's files.
    assert sorted(absent) == [
        "SourceVip.json",
        "SourceVipRequest.json",
        "azure-cni.conflist",
        "calico-config.ps1",
        "kubeadm-flags.env",
        "kubelet-config.yaml",
        "subnet.env",
    ]
    assert absent["subnet.env"]["windows_path"] == "C:\\run\\flannel\\subnet.env"


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_no_secret_survives_in_any_member(tmp_path: Path, leaky: dict[str, Any], fmt: str) -> None:
    files = members(export(tmp_path, leaky, fmt=fmt))
    raw = json.dumps(leaky)
    assert all(secret in raw for secret in SECRETS)  # planted, so their absence below means something
    for name, data in files.items():
        text = data.decode("utf-8")
        for secret in SECRETS:
            assert secret not in text, f"{secret} left in {name}"
        if name.endswith(("manifest.json", "findings.json", "probes.json", ".conf")):
            json.loads(text)  # redaction keeps our JSON valid
    manifest = json.loads(next(v for k, v in files.items() if k.endswith("manifest.json")))
    assert {"bearer-token", "connection-string", "private-key", "secret-value", "agent-token"} <= set(
        manifest["redactions"]
    )
    assert all(isinstance(n, int) for n in manifest["redactions"].values())


def test_member_names_are_safe(tmp_path: Path, leaky: dict[str, Any]) -> None:
    node = NodeBundle.from_report(leaky)
    node.files.append(node.files[0].__class__("../../etc/passwd", "C:\\x", "x"))
    node.logs.append(LogSource("..\\evil:kind", "C:\\k\\evil.log", text="line\n"))
    out = io.BytesIO()
    write_bundle(out, [node], now=WHEN)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        for member in tf.getmembers():
            assert safe_member_path(member.name) == member.name
            assert member.isfile() or member.isdir()
            assert member.mode in (0o644, 0o755)


@pytest.mark.skipif(shutil.which("tar") is None, reason="no tar on this machine")
def test_tar_lists_and_extracts_the_archive(tmp_path: Path, leaky: dict[str, Any]) -> None:
    path = export(tmp_path, leaky)
    listing = subprocess.run(["tar", "tzf", str(path)], capture_output=True, text=True, check=True).stdout.split()
    assert "win-prod-02-20261124T101540Z/manifest.json" in listing
    target = tmp_path / "x"
    target.mkdir()
    subprocess.run(["tar", "xzf", str(path), "-C", str(target)], check=True)
    assert (target / "win-prod-02-20261124T101540Z" / "logs" / "kubelet.log").is_file()


@pytest.mark.skipif(shutil.which("unzip") is None, reason="no unzip on this machine")
def test_unzip_tests_the_archive(tmp_path: Path, leaky: dict[str, Any]) -> None:
    path = export(tmp_path, leaky, fmt="zip")
    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert "No errors detected" in result.stdout


def gzip_members(data: bytes) -> int:
    """How many gzip members follow one another in ``data``."""
    count = 0
    while data:
        member = zlib.decompressobj(wbits=31)
        member.decompress(data)
        assert member.eof, "a gzip member is cut short"
        data = member.unused_data
        count += 1
    return count


def test_a_multi_member_tar_gz_is_read_back_by_tarfile_and_by_tar(tmp_path: Path) -> None:
    secrets_log = (FIXTURES / "redaction" / "kubelet-secrets.log").read_bytes()
    copies = 3 * 2**20 // len(secrets_log) + 1  # a few MiB: its data alone spans several members
    log = tmp_path / "kubelet.log"
    log.write_bytes(secrets_log * copies)
    node = NodeBundle(
        node="win-prod-02", cluster="prod-eu", logs=[LogSource("kubelet", "C:\\k\\kubelet.log", path=log)]
    )
    path = tmp_path / "bundle.tar.gz"
    with path.open("wb") as fh:
        write_bundle(fh, [node], now=WHEN)
    assert gzip_members(path.read_bytes()) >= 4
    root = "win-prod-02-20261124T101540Z"
    with tarfile.open(path) as tf:
        names = [m.name for m in tf.getmembers()]
        data = tf.extractfile(f"{root}/logs/kubelet.log").read()  # type: ignore[union-attr]
        manifest = json.loads(tf.extractfile(f"{root}/manifest.json").read())  # type: ignore[union-attr]
    listed = {f["path"]: f for f in manifest["files"]}["logs/kubelet.log"]
    assert (listed["sha256"], listed["bytes"]) == (hashlib.sha256(data).hexdigest(), len(data))
    assert data.count(b"Starting kubelet main sync loop") == copies
    assert b"kUb3l3tB3ar3rT0k3nV4lu3Xyz09" not in data and b"MHcCAQEE" not in data
    assert manifest["redactions"]["bearer-token"] == copies
    listing = subprocess.run(["tar", "tzf", str(path)], capture_output=True, text=True, check=True).stdout.split()
    assert [n.rstrip("/") for n in listing] == names
    target = tmp_path / "x"
    target.mkdir()
    subprocess.run(["tar", "xzf", str(path), "-C", str(target)], check=True)
    assert (target / root / "logs" / "kubelet.log").read_bytes() == data
    assert [s.node for s in read_bundle(path).snapshots] == ["win-prod-02"]


def test_it_streams_a_non_seekable_output(leaky: dict[str, Any]) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            self.data += bytes(b)
            return len(b)

    for fmt in ("tar.gz", "zip"):
        pipe = Pipe()
        write_bundle(pipe, [NodeBundle.from_report(leaky)], fmt=fmt, now=WHEN)  # type: ignore[arg-type]
        assert len(pipe.data) > 1000


# -- the round trip ----------------------------------------------------------------------


SCENARIOS = [
    "healthy",
    "subnet-env-missing",
    "cbr0-network-missing",
    "kube-proxy-no-hostname-override",
    "overlay-ws2019-hotfix-missing",
    "pause-image-incompatible",
    "flanneld-waiting-for-network",
]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("redaction", ["none", "secrets", "addresses"])
def test_diagnose_reads_back_the_findings_the_dashboard_had(tmp_path: Path, scenario: str, redaction: str) -> None:
    report = with_secrets(scenario_report(scenario))
    options = {
        "none": RedactOptions.none(),
        "secrets": RedactOptions(),
        "addresses": RedactOptions(ips=True, key=KEY),
    }[redaction]
    expected = findings_of(report)
    diagnosis = diagnose(export(tmp_path, report, options=options))
    # Subjects may hold addresses: they are mapped as the bundle's files were.
    mapper = Redactor(RedactOptions(secrets=False, ips=options.ips, key=KEY))
    want = sorted((c, mapper.text(s), sev, st) for c, s, sev, st in keys(expected))
    assert keys(diagnosis.document.findings) == want
    assert diagnosis.nodes == [report["node"]]


def test_diagnose_reads_back_the_same_findings_with_host_names_mapped(tmp_path: Path) -> None:
    report = scenario_report("kube-proxy-no-hostname-override")
    options = RedactOptions(ips=True, hosts=True, key=KEY)
    diagnosis = diagnose(export(tmp_path, report, options=options))
    assert [c for c, *_ in keys(diagnosis.document.findings)] == [c for c, *_ in keys(findings_of(report))]
    assert diagnosis.nodes[0].startswith("host-")
