"""The Diagnose page's engine side: an uploaded bundle or a pasted excerpt -> findings, nothing kept.

Both inputs go through ``diagnostics.cli.diagnose``, the same core as ``python -m
diagnostics``, so the page shows what the command prints for the same input. It runs in
a child process with memory and time limits (``dashboard.pages.sandbox``), never in the web process:

- an upload is linked (or copied, in chunks) into a fresh private temporary folder under a name
  this module chooses (the user's name is kept only when it is a plain, safe file
  name, because an AKS log zip's name carries the node's name), read, and deleted;
- a paste is written there as ``pasted.txt``, a name no recognition rule matches, so
  its kind comes from its content alone: a log kind (``diagnostics.logs.detect_kind``)
  or a PowerShell output one of ``diagnostics.parsers`` reads.

Findings become unsaved ``dashboard.models.Finding`` rows, so the node page's card
include renders them. Every unusable input raises ``AnalysisError`` (a ``ValueError``)
with a message fit for the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from dashboard.models import Finding
from dashboard.pages import sandbox
from diagnostics.bundle.recognize import recognize
from diagnostics.cli import Diagnosis
from diagnostics.model import Finding as EngineFinding
from diagnostics.model import Status, sort_findings

SUFFIXES = (".tar.gz", ".tgz", ".zip")
PASTE_NAME = "pasted.txt"
UNNAMED_NODE = "unknown"  # what the bundle reader calls a node it found no name for
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")

# What each input kind of findings/v1 is, in the words of the person who pasted it.
KIND_LABELS: dict[str, str] = {
    "kubelet-log": "a kubelet log",
    "kube-proxy-log": "a kube-proxy log",
    "flanneld-log": "a flanneld log",
    "runtime-log": "a containerd or Docker log",
    "start-script-log": "the output of a start script (start.ps1, start-kubelet.ps1)",
    "describe": "kubectl describe output",
    "transcript": "a terminal transcript (ping, curl, nslookup, kubectl)",
    "hns-networks": "Get-HnsNetwork output",
    "hns-endpoints": "Get-HnsEndpoint output",
    "hns-policies": "Get-HnsPolicyList output",
    "hns-events": "HNS event log entries",
    "net-adapters": "Get-NetAdapter output",
    "ip-config": "ipconfig /all output",
    "services": "Get-Service output",
    "processes": "a process list (Get-Process, Get-CimInstance Win32_Process)",
    "machine-env": "machine environment variables",
    "winver": "the Windows version (ver)",
    "os-version": "the OS version",
    "hotfixes": "Get-HotFix output",
    "computer-info": "Get-ComputerInfo output",
    "dynamic-ports": "netsh dynamic port range",
    "excluded-ports": "netsh excluded port ranges",
    "images": "a container image list (crictl images, docker images)",
    "subnet-env": "flannel's subnet.env",
    "net-conf": "flannel's net-conf.json",
    "cni-config": "a CNI configuration",
    "source-vip": "SourceVip.json",
    "source-vip-request": "SourceVipRequest.json",
    "containerd-config": "containerd's config.toml",
    "kubernetes-objects": "Kubernetes objects (kubectl get -o yaml or -o json)",
    "text": "text of no single known kind, read line by line (kubectl output, logs, transcripts)",
    "node-report": "an agent report (node-report/v1)",
    "findings": "a findings/v1 document",
}
PASTE_HINT = (
    "This box reads kubelet, kube-proxy, flanneld, containerd and start-script logs (whole or single lines, also "
    "inside event-log tables), kubectl get nodes / describe node / describe pod / get events output, kubectl "
    "version, docker version / info, crictl version, terminal transcripts of ping, curl, Test-NetConnection or "
    "nslookup, Get-HnsNetwork / Get-HnsEndpoint / Get-HnsPolicyList output, ipconfig /all, Get-NetAdapter, "
    "Get-Service, Get-HotFix, crictl images, flannel's subnet.env and Kubernetes objects as YAML or JSON."
)


class AnalysisError(ValueError):
    """The input cannot be analyzed; the message, one line, says why and is shown as is."""


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


@dataclass
class NodeFindings:
    """One node's results: failures as card rows, and the checks that lacked data to decide."""

    node: str
    failures: list[Finding] = field(default_factory=list)
    undecided: list[Finding] = field(default_factory=list)

    @property
    def named(self) -> bool:
        return self.node != UNNAMED_NODE


@dataclass
class Analysis:
    """What the page shows for one input. ``recognized`` lists the input kinds read (a paste has one)."""

    label: str  # the upload's name, for display only, or "pasted text"
    nodes: list[NodeFindings]
    inputs: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    checks: int
    document: dict[str, Any]  # findings/v1, exactly as ``python -m diagnostics --format json`` prints it

    @property
    def recognized(self) -> list[str]:
        return sorted({kind_label(str(i.get("kind", ""))) for i in self.inputs})

    @property
    def failure_count(self) -> int:
        return sum(len(n.failures) for n in self.nodes)

    @property
    def undecided_count(self) -> int:
        return sum(len(n.undecided) for n in self.nodes)

    @property
    def document_json(self) -> str:
        return json.dumps(self.document, indent=2, ensure_ascii=False)


def finding_rows(findings: Iterable[EngineFinding]) -> list[Finding]:
    """Engine findings as unsaved ``Finding`` rows (no node, no primary key), worst first.

    A row whose finding is caused by another on the same node carries ``caused_by`` (not a
    column: these rows are never saved) so the card can say "because of ...".
    """
    now = timezone.now()
    ordered = sort_findings(list(findings))
    rows = [
        Finding(
            check_id=f.check,
            subject=f.subject[:400],
            severity=f.severity.slug,
            status=f.status.slug,
            title=f.title[:300],
            summary=f.summary,
            evidence=[e.to_dict() for e in f.evidence],
            fix=list(f.fix),
            docs=f.docs,
            first_seen=now,
            last_seen=now,
        )
        for f in ordered
    ]
    for row, found in zip(rows, ordered, strict=True):
        row.caused_by = found.caused_by  # type: ignore[attr-defined]
    return rows


def _analysis(label: str, diagnosis: Diagnosis) -> Analysis:
    doc = diagnosis.document
    per_node = {name: NodeFindings(name) for name in diagnosis.nodes}
    for row, found in zip(finding_rows(doc.findings), sort_findings(list(doc.findings)), strict=True):
        group = per_node.setdefault(found.node, NodeFindings(found.node))
        (group.undecided if found.status is Status.UNKNOWN else group.failures).append(row)
    return Analysis(
        label=label,
        nodes=list(per_node.values()),
        inputs=doc.inputs,
        skipped=doc.skipped,
        checks=diagnosis.checks,
        document=doc.to_dict(),
    )


def upload_name(name: str) -> str:
    """The temporary file's name for an upload called ``name``; ``AnalysisError`` for a type we do not read.

    The suffix is ours (lower case); the rest is kept when it is a plain name (letters,
    digits, ``._-``, no leading dot) and replaced by ``bundle`` otherwise.
    """
    base = re.split(r"[\\/]", name or "")[-1]
    lower = base.lower()
    suffix = next((s for s in SUFFIXES if lower.endswith(s)), None)
    if suffix is None:
        raise AnalysisError("Upload a bundle as a .zip, .tar.gz or .tgz archive; paste single files in the box below.")
    stem = base[: -len(suffix)]
    if not _SAFE_STEM.match(stem) or ".." in stem:
        stem = "bundle"
    return stem + suffix


def _one_line(message: str, *, hide: str = "") -> str:
    if hide:
        message = message.replace(hide.rstrip("/") + "/", "").replace(hide, "")
    return " ".join(message.split())[:500]


async def analyze_upload(upload: UploadedFile, *, max_bytes: int) -> Analysis:
    """Diagnose an uploaded bundle in the sandbox; it is removed before this returns, whatever happens.

    A large upload is already a file on disk (Django's temporary upload): it is linked
    under our name, not copied; a small one is written there in chunks.
    """
    name = upload_name(upload.name or "")
    if upload.size is not None and upload.size > max_bytes:
        raise AnalysisError(too_big(max_bytes))
    if not upload.size:
        raise AnalysisError("The uploaded file is empty.")
    with tempfile.TemporaryDirectory(prefix="wnd-diagnose-") as tmp:
        path = Path(tmp) / name
        await asyncio.to_thread(_store, upload, path, max_bytes)
        diagnosis = await _run(path, tmp)
    return _analysis(name, diagnosis)


def _store(upload: UploadedFile, path: Path, max_bytes: int) -> None:
    source = getattr(upload, "temporary_file_path", None)
    if source is not None:
        with contextlib.suppress(OSError):
            os.link(source(), path)
            if path.stat().st_size > max_bytes:  # the declared size is the client's word; the bytes are ours
                raise AnalysisError(too_big(max_bytes))
            return
    written = 0
    with path.open("xb") as out:
        for chunk in upload.chunks():
            written += len(chunk)
            if written > max_bytes:
                raise AnalysisError(too_big(max_bytes))
            out.write(chunk)


async def _run(path: Path, tmp: str) -> Diagnosis:
    try:
        return await sandbox.diagnose_isolated(path)
    except sandbox.InputError as exc:
        raise AnalysisError(_one_line(str(exc), hide=tmp)) from None
    except sandbox.SandboxError as exc:
        raise AnalysisError(str(exc)) from None


async def analyze_paste(text: str) -> Analysis:
    """Diagnose a pasted log excerpt or command output (in the sandbox), recognized by its content."""
    if not text.strip():
        raise AnalysisError("Paste a log excerpt or a command's output first: the box is empty.")
    data = text.encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="wnd-diagnose-") as tmp:
        path = Path(tmp) / PASTE_NAME
        path.write_bytes(data)
        try:
            diagnosis = await sandbox.diagnose_isolated(path)
        except sandbox.InputError as exc:
            kind = recognize(PASTE_NAME, data[: 64 * 1024]).kind
            if kind is None:
                raise AnalysisError(
                    f"Nothing recognized: the text is not a log or command output this page knows. {PASTE_HINT}"
                ) from None
            raise AnalysisError(
                f"Recognized {kind_label(kind)}, but nothing in it could be read: {_one_line(str(exc), hide=tmp)}"
            ) from None
        except sandbox.SandboxError as exc:
            raise AnalysisError(str(exc)) from None
    if diagnosis.document.inputs and all(i.get("recognized") is False for i in diagnosis.document.inputs):
        raise AnalysisError(
            f"Nothing recognized: the text is not a log or command output this page knows. {PASTE_HINT}"
        )
    return _analysis("pasted text", diagnosis)


def too_big(max_bytes: int) -> str:
    return f"The upload is larger than the limit of {_human(max_bytes)} (WND_MAX_UPLOAD_BYTES)."


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def discard(upload: UploadedFile | None) -> None:
    """Close an upload now: Django's temporary file for a large one is deleted on close."""
    if upload is not None:
        with contextlib.suppress(OSError):
            upload.close()
