"""Exported bundles: one or more nodes written as a ``.tar.gz`` or ``.zip`` in constant memory.

Layout (spec/BUNDLE.md), one folder per node, ``<node>-<UTC time>/``::

    manifest.json   windows-node-bundle/v1: node, cluster, collected_at, agent_version,
                    redaction counts per rule, notes, and every file with its sha256
    findings.json   findings/v1, as the dashboard showed them (redacted like the rest)
    ISSUE.md        a GitHub issue body (``diagnostics.bundle.issue``)
    cluster/        node.json, pods.json, events.json, version.json (when known)
    node/           probes.json (raw probe outputs, read back through PROBES_BY_ID) and one
                    file per probe for people (hnsnetwork.json, services.json, ipconfig.txt, ...)
    files/          subnet.env, cni.conf, net-conf.json, SourceVip*.json, containerd/config.toml
    logs/           <kind>.log

A bundle of several nodes puts each node's folder under ``nodes-<UTC time>/``.

Everything passes through one ``Redactor`` before it is written (so a mapped IP is the
same in every file). Logs are streamed block by block. A ``.tar.gz`` is a series of gzip
members compressed by a small pool of threads while this thread redacts (``_GzipMembers``);
a tar member needs its size before its data, so a log's compressed data goes through a
temporary file (spooled: memory only while small) until its header can be written. A
``.zip`` is written by ``zipfile`` in this thread: a zip member is one deflate stream, so
it cannot be cut into independently compressed pieces. ``manifest.json`` is written last,
when every hash and count is known.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
import time
import zipfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from diagnostics.bundle.archive import safe_member_path
from diagnostics.bundle.redact import RedactOptions, Redactor
from diagnostics.model import Finding, FindingsDocument

BUNDLE_FORMAT = "windows-node-bundle/v1"
PRODUCT_VERSION = "0.1.0"
FORMATS = ("tar.gz", "zip")
BLOCK = 1 << 20
SPOOL_BYTES = 8 << 20  # a log smaller than this never touches the disk
COMPRESS_LEVEL = 6  # what ``tar czf`` uses
GZIP_CHUNK = 1 << 20  # input of one gzip member of a .tar.gz
GZIP_WORKERS = 2  # threads compressing members at once

# Probe id -> the file people read in node/ (names the bundle reader recognizes too).
PROBE_FILES: dict[str, str] = {
    "os.version": "osinfo.json",
    "os.hotfixes": "hotfix.json",
    "hns.networks": "hnsnetwork.json",
    "hns.endpoints": "hnsendpoint.json",
    "hns.policies": "hnspolicy.json",
    "hns.events": "hnsevents.json",
    "net.adapters": "netadapter.json",
    "net.ipconfig": "ipconfig.txt",
    "services": "services.json",
    "processes": "processes.json",
    "env.machine": "env.json",
    "computer.info": "computerinfo.json",
    "images": "images.json",
    "ports.dynamic": "dynamicportrange.txt",
    "ports.excluded": "excludedportrange.txt",
}
# Known files whose logical name the reader would not recognize as a file name.
FILE_MEMBERS: dict[str, str] = {"containerd-config.toml": "containerd/config.toml"}

Progress = Callable[[int, int, str], None]  # (bytes done, bytes in all, what is being written)


@dataclass(frozen=True)
class NodeFile:
    """A known file of the node. ``content is None``: absent on the node (or unreadable: ``error``)."""

    name: str
    windows_path: str
    content: str | None
    error: str | None = None


@dataclass(frozen=True)
class LogSource:
    """A log: its text (a stored tail), or a file on disk read as a stream."""

    kind: str
    windows_path: str
    text: str | None = None
    path: Path | None = None

    def size(self) -> int:
        if self.text is not None:
            return len(self.text)
        return self.path.stat().st_size if self.path is not None else 0

    def open(self) -> IO[str]:
        """The text, line ends as they are; a file's ``read(n)`` reads n bytes (see ``_DecodedText``)."""
        if self.text is not None:
            return io.StringIO(self.text)
        if self.path is None:
            return io.StringIO("")
        raw = self.path.open("rb")
        try:
            head = raw.read(4)
            raw.seek(0)
        except BaseException:
            raw.close()
            raise
        encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
        if encoding == "utf-8-sig" and len(head) >= 4 and head[1:2] == b"\x00" and head[3:4] == b"\x00":
            encoding = "utf-16-le"
        return cast(IO[str], _DecodedText(raw, encoding))


class _DecodedText(io.TextIOBase):
    """A binary file read as text, undecodable bytes replaced and line ends kept.

    ``read(n)`` decodes about n *bytes*: ``TextIOWrapper.read(n)`` counts n characters,
    which costs more than the decoding itself on a log of hundreds of megabytes.
    """

    def __init__(self, raw: BinaryIO, encoding: str) -> None:
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder(encoding)(errors="replace")

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        while True:
            data = self.raw.read(-1 if size is None else size)
            text = self.decoder.decode(data, final=not data)
            if text or not data:  # never "" before the end (a character cut by the edge of a read)
                return text

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


@dataclass
class NodeBundle:
    """Everything exported about one node; built by ``from_report`` or by hand."""

    node: str
    cluster: str = ""
    collected_at: str = ""
    agent_version: str = ""
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"output", "error", "command"}
    files: list[NodeFile] = field(default_factory=list)
    logs: list[LogSource] = field(default_factory=list)
    connectivity: list[dict[str, Any]] = field(default_factory=list)
    cluster_objects: dict[str, Any] = field(default_factory=dict)  # "node.json" -> API object, ...
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)  # for ISSUE.md: kubernetes, os, runtime, network, ...

    @classmethod
    def from_report(
        cls,
        document: Mapping[str, Any],
        *,
        log_texts: Mapping[str, tuple[str, str]] | None = None,
        findings: Iterable[Finding] = (),
        cluster_objects: Mapping[str, Any] | None = None,
        notes: Iterable[str] = (),
    ) -> NodeBundle:
        """A node from its latest ``node-report/v1`` (validated: ``ReportError`` otherwise).

        ``log_texts`` (kind -> (path, text)) replaces the report's own log tails, as the
        dashboard's diagnosis does, so that the bundle is read back into the same snapshot.
        """
        from diagnostics.bundle.issue import facts_of
        from diagnostics.report import parse_report, snapshot_from_report

        report = parse_report(dict(document))
        texts = log_texts if log_texts is not None else {k: (v.path, v.text) for k, v in report.logs.items()}
        snapshot = snapshot_from_report(report, log_texts=texts)
        raw_probes = document.get("probes") or {}
        probes = {
            probe_id: {"output": result.output, "error": result.error, "command": result.command}
            for probe_id, result in report.probes.items()
            if isinstance(raw_probes.get(probe_id), dict)
        }
        return cls(
            node=report.node,
            cluster=report.cluster,
            collected_at=report.collected_at.isoformat().replace("+00:00", "Z"),
            agent_version=report.agent_version,
            probes=probes,
            files=[NodeFile(name, f.path, f.content, f.error) for name, f in report.files.items()],
            logs=[LogSource(kind, path, text=text) for kind, (path, text) in sorted(texts.items())],
            connectivity=[
                {"kind": c.kind, "target": c.target, "origin": c.origin, "ok": c.ok, "output": c.output}
                for c in report.connectivity
            ],
            cluster_objects=dict(cluster_objects or {}),
            findings=list(findings),
            notes=list(notes),
            facts=facts_of(snapshot),
        )


@dataclass
class BundleSummary:
    """What was written: the top folder, member paths with their sha256 and size, redaction counts."""

    root: str = ""  # the archive's top folder (hosts mapped when asked): the bundle's file name too
    members: list[dict[str, Any]] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)
    issue_title: str = ""
    issue_body: str = ""


def bundle_name(nodes: list[NodeBundle], when: datetime, redactor: Redactor | None = None) -> str:
    """``<node>-<yyyymmddTHHMMSSZ>`` for one node (the name the reader recognizes), ``nodes-<time>`` for several."""
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    if len(nodes) == 1:
        name = redactor.host(nodes[0].node) if redactor else nodes[0].node
        return f"{safe_component(name)}-{stamp}"
    return f"nodes-{stamp}"


def safe_component(name: str) -> str:
    """One path component: letters, digits, ``.``, ``_`` and ``-``; never empty, never ``.``/``..``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "_"
    return cleaned[:200]


def write_bundle(
    out: BinaryIO,
    nodes: list[NodeBundle],
    *,
    fmt: str = "tar.gz",
    options: RedactOptions | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> BundleSummary:
    """Write the bundle of ``nodes`` to ``out`` (any writable binary file object, seekable or not).

    Raises ``ValueError`` for an unknown format or no node. Memory stays bounded by the
    block size whatever the size of the logs.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown bundle format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not nodes:
        raise ValueError("a bundle needs at least one node")
    when = now or datetime.now(UTC)
    redactor = Redactor(options)
    for node in nodes:
        redactor.learn_hosts(_host_names(node))
    total = sum(_input_size(n) for n in nodes)
    tracker = _Tracker(total, progress)
    summary = BundleSummary()
    sink: _Sink = _TarSink(out, when) if fmt == "tar.gz" else _ZipSink(out, when)
    top = summary.root = bundle_name(nodes, when, redactor)
    try:
        for node in nodes:
            root = top if len(nodes) == 1 else f"{top}/{bundle_name([node], when, redactor)}"
            _write_node(sink, root, node, redactor, tracker, summary, when)
    finally:
        sink.close()
    summary.redactions = {rule: n for rule, n in sorted(redactor.counts.items()) if n}
    tracker.done("finished")
    return summary


# -- one node -------------------------------------------------------------------


def _write_node(
    sink: _Sink,
    root: str,
    node: NodeBundle,
    redactor: Redactor,
    tracker: _Tracker,
    summary: BundleSummary,
    when: datetime,
) -> None:
    from diagnostics.bundle.issue import render_issue

    before = Counter(redactor.counts)
    listed: list[dict[str, Any]] = []

    def add(rel: str, data: bytes, **meta: Any) -> None:
        path = safe_member_path(f"{root}/{rel}")
        digest = hashlib.sha256(data).hexdigest()
        sink.add_bytes(path, data)
        listed.append({"path": rel, "sha256": digest, "bytes": len(data), **meta})
        summary.members.append({"path": path, "sha256": digest, "bytes": len(data)})
        tracker.advance(len(data), rel)

    def add_json(rel: str, value: Any, **meta: Any) -> None:
        add(rel, _dump(redactor_json(redactor, value)), **meta)

    # 1. The findings first: ISSUE.md is made of them (already redacted).
    findings_doc = redactor_json(redactor, FindingsDocument(findings=list(node.findings)).to_dict())
    add("findings.json", _dump(findings_doc))
    shown_node = redactor.host(node.node)
    facts = {key: redactor.text(value) for key, value in node.facts.items()}
    notes = [redactor.text(n) for n in node.notes]
    title, body = render_issue(
        node=shown_node,
        cluster=redactor.host(node.cluster),
        findings=[Finding.from_dict(f) for f in findings_doc["findings"]],
        facts=facts,
        notes=notes,
    )
    summary.issue_title, summary.issue_body = title, body
    add("ISSUE.md", body.encode("utf-8"))

    # 2. API objects, probe outputs (raw, as the agent sent them), known files, logs.
    for name, value in sorted(node.cluster_objects.items()):
        add_json(f"cluster/{safe_component(name)}", value)
    if node.probes:
        add_json("node/probes.json", node.probes)
        for probe_id, result in sorted(node.probes.items()):
            member = PROBE_FILES.get(probe_id)
            if member and not result.get("error") and isinstance(result.get("output"), str):
                add(f"node/{member}", redactor.text(result["output"]).encode("utf-8"), probe=probe_id)
    if node.connectivity:
        add_json("node/connectivity.json", node.connectivity)
    for known in sorted(node.files, key=lambda f: f.name):
        rel = f"files/{FILE_MEMBERS.get(known.name) or safe_component(known.name)}"
        meta = {"name": known.name, "windows_path": redactor.text(known.windows_path)}
        if known.error is not None:
            listed.append({"path": rel, **meta, "error": redactor.text(known.error)})
        elif known.content is None:
            listed.append({"path": rel, **meta, "exists": False})
        else:
            add(rel, redactor.text(known.content).encode("utf-8"), **meta)
    for log in sorted(node.logs, key=lambda lg: lg.kind):
        rel = f"logs/{safe_component(log.kind)}.log"
        path = safe_member_path(f"{root}/{rel}")
        with log.open() as source:
            chunks = (block.encode("utf-8") for block in redactor.stream(source, BLOCK))
            digest, size = sink.add_stream(path, _counting(chunks, tracker, rel))
        meta = {"kind": log.kind, "windows_path": redactor.text(log.windows_path)}
        listed.append({"path": rel, "sha256": digest, "bytes": size, **meta})
        summary.members.append({"path": path, "sha256": digest, "bytes": size})

    # 3. The manifest, last: it lists every file above with its hash, and what was redacted.
    counts = redactor.counts - before
    manifest = {
        "format": BUNDLE_FORMAT,
        "product_version": PRODUCT_VERSION,
        "node": shown_node,
        "cluster": redactor.host(node.cluster),
        "collected_at": node.collected_at,
        "created_at": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "agent_version": node.agent_version,
        "redaction": redactor.options.describe(),
        "redactions": {rule: n for rule, n in sorted(counts.items()) if n},
        "notes": notes,
        "files": listed,
    }
    data = _dump(manifest)
    path = safe_member_path(f"{root}/manifest.json")
    sink.add_bytes(path, data)
    summary.members.append({"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})


def redactor_json(redactor: Redactor, value: Any, key: str = "") -> Any:
    """A JSON value with every string redacted; values of secret-named keys (and ``env`` entries) wholly."""
    if isinstance(value, str):
        if key and redactor.options.secrets and _secret_key(key):
            if value and value != "REDACTED":
                redactor.counts["secret-value"] += 1
                return "REDACTED"
            return value
        return redactor.text(value)
    if isinstance(value, dict):
        name = value.get("name")
        secret_entry = isinstance(name, str) and "value" in value and redactor.options.secrets and _secret_key(name)
        out: dict[str, Any] = {}
        for k, v in value.items():
            if secret_entry and k == "value" and isinstance(v, str) and v:
                redactor.counts["secret-value"] += 1
                out[k] = "REDACTED"
            else:
                out[k] = redactor_json(redactor, v, str(k))
        return out
    if isinstance(value, (list, tuple)):
        return [redactor_json(redactor, v) for v in value]
    return value


_SECRET_KEY = re.compile(
    r"passw(or)?d|passphrase|secret|api[_-]?key|access[_-]?key|private[_-]?key|client[_-]?key[_-]?data|"
    r"(^|[_.-])token$|^token|auth[_-]?token|access[_-]?token|refresh[_-]?token|identity[_-]?token|credentials?$|"
    r"^auth$|[_.-]auth$|(storage|account|shared|subscription)[_-]?key$",
    re.IGNORECASE,
)
_NOT_SECRET_KEY = re.compile(r"(file|path|dir|name|ref|policy|type|mount|volume|_id|ttl|expir|count)$", re.IGNORECASE)


def _secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) and not _NOT_SECRET_KEY.search(key)


def _dump(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


_HOST_LINES = re.compile(
    r"^\s*(Host Name|Primary Dns Suffix|Connection-specific DNS Suffix|DNS Suffix Search List)[ .]*:\s*(\S+)\s*$",
    re.MULTILINE,
)


def _host_names(node: NodeBundle) -> list[str]:
    """The node's own names and DNS domains, for host-name mapping."""
    names = [node.node, node.cluster]
    ipconfig = node.probes.get("net.ipconfig", {}).get("output")
    if isinstance(ipconfig, str):
        names += [m.group(2) for m in _HOST_LINES.finditer(ipconfig)]
    node_obj = node.cluster_objects.get("node.json")
    if isinstance(node_obj, dict):
        for address in (node_obj.get("status") or {}).get("addresses") or []:
            if isinstance(address, dict) and address.get("type") in ("Hostname", "InternalDNS", "ExternalDNS"):
                names.append(str(address.get("address", "")))
    return [n for n in names if n]


def _input_size(node: NodeBundle) -> int:
    small = sum(len(str(p.get("output") or "")) for p in node.probes.values())
    small += sum(len(f.content or "") for f in node.files)
    return small + sum(log.size() for log in node.logs) + 1


class _Tracker:
    """Progress in input bytes, reported at most every ``step`` bytes (and at the end)."""

    def __init__(self, total: int, progress: Progress | None, step: int = 8 << 20) -> None:
        self.total = max(total, 1)
        self.progress = progress
        self.step = step
        self.position = 0
        self.reported = -step

    def advance(self, n: int, what: str) -> None:
        self.position = min(self.total, self.position + n)
        if self.progress is not None and self.position - self.reported >= self.step:
            self.reported = self.position
            self.progress(self.position, self.total, what)

    def done(self, what: str) -> None:
        if self.progress is not None:
            self.progress(self.total, self.total, what)


def _counting(chunks: Iterable[bytes], tracker: _Tracker, what: str) -> Iterator[bytes]:
    for chunk in chunks:
        tracker.advance(len(chunk), what)
        yield chunk


# -- archive formats ---------------------------------------------------------------


class _Sink:
    def add_bytes(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    def add_stream(self, path: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Write a member from chunks; return its sha256 and size."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _GzipMembers:
    """A gzip stream written as a series of members, compressed in parallel, written in order.

    RFC 1952 lets a gzip file be several members one after the other; ``gunzip``, ``tar``
    and Python's ``gzip``/``tarfile`` read them as one stream. Fixed-size chunks of input
    are compressed by a small pool of threads (zlib and crc32 release the GIL), so that
    compression runs on other cores while this thread redacts. At most ``workers + 1``
    chunks are in flight: memory stays bounded whatever the size of the input.

    Each chunk goes to the file that was the destination when it was queued (``divert``),
    and ``then`` queues an action that runs once every chunk queued before it is written:
    a tar member's data is compressed before its header is known, then copied after it.
    """

    def __init__(self, out: BinaryIO, mtime: int, *, chunk: int = GZIP_CHUNK, workers: int = GZIP_WORKERS) -> None:
        self.dest: IO[bytes] = out
        self.mtime = mtime
        self.chunk = chunk
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bundle-gzip")
        self.pending: deque[tuple[Future[bytes], IO[bytes]] | Callable[[], None]] = deque()
        self.pieces: list[bytes] = []
        self.buffered = 0
        self.written = 0  # uncompressed bytes so far

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.pieces.append(data)
        self.buffered += len(data)
        if self.buffered >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Queue what is buffered as a member of its own."""
        if not self.buffered:
            return
        data = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
        self.pieces, self.buffered = [], 0
        self.pending.append((self.pool.submit(_gzip_member, data, self.mtime), self.dest))
        self._drain(self.workers)

    def divert(self, dest: IO[bytes]) -> None:
        """Send what is written from now on to ``dest`` (what was written before keeps its destination)."""
        self.flush()
        self.dest = dest

    def then(self, action: Callable[[], None]) -> None:
        """Run ``action`` once everything written so far has reached its destination."""
        self.flush()
        self.pending.append(action)
        self._drain(self.workers)

    def _drain(self, keep: int) -> None:
        while len(self.pending) > keep:
            item = self.pending.popleft()
            if callable(item):
                item()
            else:
                future, dest = item
                dest.write(future.result())

    def close(self) -> None:
        """Write everything still queued; the pool is shut down even when that fails."""
        try:
            self.flush()
            self._drain(0)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _gzip_member(data: bytes, mtime: int) -> bytes:
    return gzip.compress(data, compresslevel=COMPRESS_LEVEL, mtime=mtime)


class _TarSink(_Sink):
    """A gzip-compressed tar (pax format), written as a stream: the output need not be seekable.

    The tar stream is produced here (headers from ``tarfile.TarInfo.tobuf``) and compressed
    by ``_GzipMembers``. A log's size is known only once it is redacted, and its header
    comes before its data: its data is compressed as it comes, into a spooled temporary
    file (memory only while small), then copied after the header. So a log is compressed
    while it is redacted, and only its compressed form is spooled.
    """

    def __init__(self, out: BinaryIO, when: datetime) -> None:
        self.mtime = int(when.timestamp())
        self.gz = _GzipMembers(out, self.mtime)
        self.out = out
        self.dirs: set[str] = set()

    def _header(self, info: tarfile.TarInfo) -> None:
        self.gz.write(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))

    def _pad(self, size: int) -> None:
        rest = size % tarfile.BLOCKSIZE
        if rest:
            self.gz.write(tarfile.NUL * (tarfile.BLOCKSIZE - rest))

    def _info(self, path: str, size: int) -> tarfile.TarInfo:
        self._parents(path)
        info = tarfile.TarInfo(path)
        info.size = size
        info.mtime = self.mtime
        info.mode = 0o644
        info.uname = info.gname = ""
        return info

    def _parents(self, path: str) -> None:
        """Directory entries, so that ``tar`` recreates folders with sane modes."""
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folder = "/".join(parts[:i])
            if folder not in self.dirs:
                self.dirs.add(folder)
                info = tarfile.TarInfo(folder)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                info.mtime = self.mtime
                info.uname = info.gname = ""
                self._header(info)

    def add_bytes(self, path: str, data: bytes) -> None:
        self._header(self._info(path, len(data)))
        self.gz.write(data)
        self._pad(len(data))

    def add_stream(self, path: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        digest = hashlib.sha256()
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, prefix="wnd-bundle-")  # noqa: SIM115
        start = self.gz.written
        self.gz.divert(spool)
        try:
            for chunk in chunks:
                digest.update(chunk)
                self.gz.write(chunk)
        except BaseException:
            self.gz.divert(self.out)
            self.gz.then(spool.close)  # the member is left out; what is queued for the spool still lands there
            raise
        size = self.gz.written - start
        self.gz.divert(self.out)
        self._header(self._info(path, size))  # counted by ``written`` after the data, written before it
        self.gz.then(lambda: _copy_and_close(spool, self.out))
        self._pad(size)
        return digest.hexdigest(), size

    def close(self) -> None:
        """End the archive as ``tarfile`` does: two zero blocks, then zeros up to a whole record."""
        try:
            self.gz.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
            rest = self.gz.written % tarfile.RECORDSIZE
            if rest:
                self.gz.write(tarfile.NUL * (tarfile.RECORDSIZE - rest))
        finally:
            self.gz.close()


def _copy_and_close(spool: IO[bytes], out: IO[bytes]) -> None:
    try:
        spool.seek(0)
        shutil.copyfileobj(spool, out, BLOCK)
    finally:
        spool.close()


class _ZipSink(_Sink):
    """A zip, members streamed straight in (data descriptors when the output cannot seek).

    Compressed in this thread, one member after the other: slower than the ``.tar.gz``
    on large logs.
    """

    def __init__(self, out: BinaryIO, when: datetime) -> None:
        self.date_time = time.gmtime(max(int(when.timestamp()), 315532800))[:6]  # zip dates start in 1980
        self.zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)

    def _info(self, path: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, date_time=self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def add_bytes(self, path: str, data: bytes) -> None:
        self.zip.writestr(self._info(path), data, compresslevel=COMPRESS_LEVEL)

    def add_stream(self, path: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with self.zip.open(self._info(path), "w", force_zip64=True) as member:
            for chunk in chunks:
                digest.update(chunk)
                member.write(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def close(self) -> None:
        self.zip.close()


def issue_for(node: NodeBundle, options: RedactOptions | None = None) -> tuple[str, Callable[[str], dict[str, str]]]:
    """The issue title and its fields (a function of the detail level) for ``issue_url``, redacted like a bundle."""
    from diagnostics.bundle.issue import issue_fields, issue_title

    redactor = Redactor(options)
    redactor.learn_hosts(_host_names(node))
    document = redactor_json(redactor, FindingsDocument(findings=list(node.findings)).to_dict())
    findings = [Finding.from_dict(f) for f in document["findings"]]
    shown, cluster = redactor.host(node.node), redactor.host(node.cluster)
    facts = {key: redactor.text(value) for key, value in node.facts.items()}
    notes = [redactor.text(n) for n in node.notes]

    def fields(detail: str) -> dict[str, str]:
        return issue_fields(shown, cluster, findings, facts, notes, detail=detail)

    return issue_title(shown, findings), fields
