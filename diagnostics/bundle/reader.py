"""Bundle -> ``NodeSnapshot`` per node: the offline side of the product.

``read_bundle(path)`` opens a directory, ``.zip`` or tar (``archive``), tells each
file's kind (``recognize``), hands PowerShell outputs to ``diagnostics.parsers``,
logs to ``diagnostics.logs`` (streamed, constant memory), and sorts Kubernetes
objects to the node they belong to. Every ``Fact.source`` is the file's path inside
the bundle.

How files are grouped into nodes (in one pass over the bundle, grouped at the end):

1. node roots: the bundle's top, every folder holding a ``manifest.json`` or an
   agent report, and -- when the same kind of node data appears under two or more
   top-level folders (a folder per node) -- each such top-level folder;
2. each node-side file belongs to the deepest root above it;
3. a root's node name: its manifest (or report), else an AKS / exported name
   (``<node>-<yyyyMMdd-hhmmss>``), else the host name in ``ipconfig /all``, else the
   folder's name (for a folder per node), else the only Node object of the bundle,
   else ``unknown``;
4. Kubernetes objects are cluster-wide: each node gets its Node object, the pods
   bound to it and their events; controllers and unbound pods are checked once
   (on the first node); Services and EndpointSlices form the ``ClusterView``.

A bundle with no node-side files (a troubleshoot.sh bundle, a folder of YAML) gives
one snapshot per Windows Node object, or one ``unknown`` node for bare manifests.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagnostics.bundle.archive import (
    DEFAULT_LIMITS,
    BundleError,
    BundleSource,
    Entry,
    Limits,
    MemberError,
    MiB,
    open_bundle,
)
from diagnostics.bundle.recognize import (
    FILE_KINDS,
    INPUT_KIND_OF_LOG,
    K8S_OBJECTS,
    LOG_KINDS,
    base_name,
    recognize,
    sniff_text,
)
from diagnostics.facts import ConnectivityResult
from diagnostics.snapshot import ClusterView, Fact, FileFact, LogHit, NodeSnapshot, PeerSummary

log = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024
TEXT_FACTS_BYTES = 4 * MiB  # how much of a describe/transcript file is read for kubectl tables and versions
PASTE_WHOLE_BYTES = 16 * MiB  # a single file up to this size is read whole (a paste); a bigger log is streamed
# Structured files are parsed whole (logs are streamed), so each kind has a cap on what is parsed:
# real ones are kilobytes (an HNS dump, ipconfig) to a few MiB (a busy node's pods), and parsing costs
# about ten times the file's size in memory.
MAX_PARSED_BYTES = 8 * MiB
MAX_PASTED_BYTES = 256 * MiB  # a single file given alone (a log passed to diagnose) is read whole
MAX_PARSED_BYTES_BY_KIND = {"kubernetes-objects": 32 * MiB, "node-report": 32 * MiB, "findings": 32 * MiB}
UNKNOWN_NODE = "unknown"

# Input kind -> the snapshot fields it fills and the parser of each ("module:function",
# imported on first use so that a parser still being written only costs that kind).
PARSERS: dict[str, tuple[tuple[str, str], ...]] = {
    "hns-networks": (("hns_networks", "diagnostics.parsers.hns:parse_networks"),),
    "hns-endpoints": (("hns_endpoints", "diagnostics.parsers.hns:parse_endpoints"),),
    "hns-policies": (("hns_policies", "diagnostics.parsers.hns:parse_policies"),),
    "hns-events": (("hns_events", "diagnostics.parsers.windows:parse_hns_events"),),
    "net-adapters": (("adapters", "diagnostics.parsers.windows:parse_adapters"),),
    "ip-config": (("ip_config", "diagnostics.parsers.windows:parse_ipconfig"),),
    "services": (("services", "diagnostics.parsers.windows:parse_services"),),
    "processes": (("processes", "diagnostics.parsers.windows:parse_processes"),),
    "machine-env": (("machine_env", "diagnostics.parsers.windows:parse_machine_env"),),
    "winver": (
        ("os", "diagnostics.parsers.windows:parse_os_version"),
        ("hotfixes", "diagnostics.parsers.windows:parse_hotfixes"),
    ),
    "os-version": (("os", "diagnostics.parsers.windows:parse_os_version"),),
    "hotfixes": (("hotfixes", "diagnostics.parsers.windows:parse_hotfixes"),),
    "computer-info": (("computer", "diagnostics.parsers.windows:parse_computer_info"),),
    "dynamic-ports": (("dynamic_ports", "diagnostics.parsers.windows:parse_dynamic_port_range"),),
    "excluded-ports": (("excluded_ports", "diagnostics.parsers.windows:parse_excluded_port_ranges"),),
    "images": (("images", "diagnostics.parsers.runtime:parse_images"),),
}

# Which source wins when two files give the same fact (lower is better).
_PRIO_REPORT, _PRIO_PROBES, _PRIO_FILE = 0, 1, 2

_CONTROLLER_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob", "ReplicaSet", "ReplicationController"}
_NODE_NAME_RE = re.compile(
    r"^(?P<node>[A-Za-z0-9][A-Za-z0-9.-]*?)-(?P<date>\d{8})-?T?(?P<time>\d{6})Z?(_logs)?"
    r"(\.zip|\.tar\.gz|\.tgz|\.tar)?$"
)
# Folders of the layouts we read: they hold one node's data, they are never a node themselves.
_LAYOUT_FOLDERS = {
    "logs",
    "node",
    "files",
    "cluster",
    "cluster-resources",
    "cluster-info",
    "debug",
    "winevt",
    "adapters",
}
_HOST_NAME_RE = re.compile(r"^\s*Host Name[ .]*:\s*(\S+)\s*$", re.MULTILINE)
_PATH_KIND_HINTS = (
    ("nodes", "Node"),
    ("pods", "Pod"),
    ("events", "Event"),
    ("deployments", "Deployment"),
    ("daemonsets", "DaemonSet"),
    ("statefulsets", "StatefulSet"),
    ("replicasets", "ReplicaSet"),
    ("jobs", "Job"),
    ("cronjobs", "CronJob"),
    ("services", "Service"),
    ("endpointslices", "EndpointSlice"),
)


@dataclass
class BundleResult:
    """What a bundle held: a snapshot per node, what was read, and what was not (with why)."""

    snapshots: list[NodeSnapshot]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


# -- what one pass over the bundle collects ------------------------------------


@dataclass
class _Candidate:
    priority: int
    path: str
    value: Any


@dataclass
class _NodePart:
    """Node-side data found in one file, waiting to be assigned to its node."""

    path: str
    kind: str
    facts: dict[str, _Candidate] = field(default_factory=dict)
    files: dict[str, _Candidate] = field(default_factory=dict)
    log_kind: str = ""
    log_hits: list[LogHit] = field(default_factory=list)
    names: list[tuple[int, str]] = field(default_factory=list)  # (priority, node name)
    collected_at: str = ""
    agent_version: str = ""
    cluster: str = ""
    connectivity: tuple[ConnectivityResult, ...] = ()
    is_root: bool = False  # a manifest or report: its folder is a node root
    manifest_files: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Collected:
    parts: list[_NodePart] = field(default_factory=list)
    objects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, API object)
    empty_kinds: set[tuple[str, str]] = field(default_factory=set)  # (kind, path) of empty lists read
    server_version: tuple[str, str] | None = None  # (gitVersion, path)
    cluster_cidr: tuple[str, str] | None = None
    service_cidr: tuple[str, str] | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def read_bundle(
    path: str | Path,
    *,
    node: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> BundleResult:
    """Read a bundle into snapshots; ``BundleError`` (a ``ValueError``) when it is unusable.

    ``node`` keeps only that node (``BundleError`` if the bundle has no such node);
    on a bundle whose only node has no name, it names it.
    """
    source = open_bundle(path, limits)
    collected = _Collected()
    with tempfile.TemporaryDirectory(prefix="wnd-bundle-") as tmp:
        for entry in source.entries():
            _read_entry(entry, source, collected, Path(tmp))
    collected.skipped[:0] = source.skipped
    if not collected.inputs:
        count = len(collected.skipped)
        hint = (
            f" ({count} file{'s' if count != 1 else ''} skipped, e.g. {_first_skip(collected.skipped)})"
            if count
            else ""
        )
        what = "file" if source.format == "file" else "bundle"
        raise BundleError(f"{source.name}: not a bundle: no diagnostic data found in this {what}{hint}")
    snapshots = _assemble(collected, source, wanted=node)
    snapshots = _select(snapshots, node)
    return BundleResult(snapshots=snapshots, inputs=collected.inputs, skipped=collected.skipped)


def _first_skip(skipped: list[dict[str, Any]]) -> str:
    first = skipped[0]
    return f"{first['path']}: {first['reason']}"


# -- one file ------------------------------------------------------------------


def _read_entry(entry: Entry, source: BundleSource, out: _Collected, tmp: Path) -> None:
    try:
        head = entry.stream.read(HEAD_BYTES)
        found = recognize(entry.path, head)
        if source.format == "file" and sniff_text(head) is not None:
            if found.kind in LOG_KINDS and entry.size > PASTE_WHOLE_BYTES:
                # A big log file: streamed in constant memory as in a bundle; its head is still read as text.
                _read_log(entry, head, found.kind, out, tmp)
                part = out.parts[-1] if out.parts and out.parts[-1].path == entry.path else None
                if part is not None:
                    _read_text_facts(entry.path, decode_text(head), part, out)
                return
            _read_pasted(entry, head, found.kind, out)
            return
        if not found:
            out.skipped.append({"path": entry.path, "reason": found.reason})
            return
        kind = found.kind or ""
        if kind in LOG_KINDS:
            _read_log(entry, head, kind, out, tmp)
            return
        cap = MAX_PARSED_BYTES_BY_KIND.get(kind, MAX_PARSED_BYTES)
        data = head + entry.stream.read(cap + 1 - len(head))
        if len(data) > cap:
            out.skipped.append({"path": entry.path, "reason": f"{kind} file larger than {cap // MiB} MiB; not parsed"})
            return
        size = len(data)
        used_kind = _read_structured(entry.path, kind, data, out)
    except MemberError as exc:
        out.skipped.append({"path": entry.path, "reason": str(exc)})
        return
    if used_kind:
        out.inputs.append({"path": entry.path, "kind": used_kind, "bytes": size})


def _read_pasted(entry: Entry, head: bytes, kind: str | None, out: _Collected) -> None:
    """A single file given alone (a paste, a file passed to ``diagnose``): read everything it shows.

    People paste mixtures -- a kubectl table, a log excerpt, an ipconfig -- so besides the file's
    own kind (parsed as usual when it has one) every line goes through the log analyzer with all
    its patterns, and ``diagnostics.parsers.text`` reads the kubectl output and versions in it.
    Text of no known kind is still read (input kind ``text``), never skipped.
    """
    data = head + entry.stream.read(MAX_PASTED_BYTES + 1 - len(head))
    if len(data) > MAX_PASTED_BYTES:
        out.skipped.append({"path": entry.path, "reason": "text larger than 256 MiB; not read"})
        return
    text = decode_text(data)
    used_kind = ""
    if kind and kind not in LOG_KINDS:
        own = _Collected()
        used_kind = _read_structured(entry.path, kind, data, own) or ""
        out.parts += own.parts
        out.objects += own.objects
        out.empty_kinds |= own.empty_kinds
        out.server_version = out.server_version or own.server_version
        out.cluster_cidr = out.cluster_cidr or own.cluster_cidr
        out.service_cidr = out.service_cidr or own.service_cidr
    if not used_kind:
        yaml_text = _embedded_yaml(text)
        if yaml_text:
            own = _Collected()
            if _read_objects(entry.path, yaml_text.encode("utf-8"), own):
                out.objects += own.objects
                out.empty_kinds |= own.empty_kinds
                used_kind = K8S_OBJECTS
    from diagnostics.logs import detect_kind, scan_text

    log_kind = LOG_KINDS[kind] if kind in LOG_KINDS else (detect_kind(entry.path, text[:8192]) or "")
    hits = [dataclasses.replace(h, log_kind=log_kind or "log") for h in scan_text(text, source=entry.path)]
    part = _NodePart(entry.path, kind or "text", log_kind=log_kind, log_hits=hits)
    objects_before = len(out.objects)
    _read_text_facts(entry.path, text[:TEXT_FACTS_BYTES], part, out)
    out.parts.append(part)
    if not used_kind:
        used_kind = INPUT_KIND_OF_LOG.get(log_kind, "") if log_kind else ""
    item: dict[str, Any] = {"path": entry.path, "kind": used_kind or "text", "bytes": len(data)}
    if not used_kind and not hits and not part.facts and len(out.objects) == objects_before:
        item["recognized"] = False  # read line by line, and nothing in it is anything the checks know
    out.inputs.append(item)


_YAML_START = re.compile(r"^([ \t>]*)(?:apiVersion|kind):\s*\S", re.MULTILINE)


def _embedded_yaml(text: str) -> str:
    """Kubernetes YAML inside other text -- indented (Markdown quotes it so), after a ``kubectl`` prompt,
    between prose -- cut out and de-indented; "" when there is none."""
    match = _YAML_START.search(text)
    if not match or not re.search(r"^[ \t>]*kind:\s*\S", text, re.MULTILINE):
        return ""
    prefix = match.group(1)
    lines = []
    for line in text[match.start() :].splitlines():
        if not line.strip():
            lines.append("")
            continue
        if not line.startswith(prefix) or (line[len(prefix) :].startswith(("PS ", "$ ", "# ")) and prefix == ""):
            break
        lines.append(line[len(prefix) :])
    return "\n".join(lines).strip("\n") + "\n"


def _read_text_facts(path: str, text: str, part: _NodePart, out: _Collected) -> None:
    """What ``diagnostics.parsers.text`` finds in free text, as API objects and node facts."""
    from diagnostics.parsers.text import read_text

    try:
        facts = read_text(text)
    except (ValueError, RecursionError) as exc:  # odd text costs its facts, never the input
        log.warning("free text of %s not read: %s", path, exc)
        return
    nodes = facts.nodes
    for node in nodes:
        out.objects.append((path, node))
    if facts.server_version and out.server_version is None:
        out.server_version = (facts.server_version, path)
    if facts.node_info or facts.resources:
        if len(nodes) == 1:
            info = nodes[0]["status"]["nodeInfo"]
            for key, value in facts.node_info.items():
                info.setdefault(key, value)
            for section, amounts in facts.resources.items():
                nodes[0]["status"].setdefault(section, amounts)
        elif not nodes:
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": ""},
                "status": {"nodeInfo": facts.node_info, **facts.resources},
            }
            part.facts["node_object"] = _Candidate(_PRIO_FILE + 1, path, Fact(node, path))
    if facts.cni_conf:
        part.files.setdefault("cni.conf", _Candidate(_PRIO_FILE, path, facts.cni_conf))
    if facts.hns_networks_empty:
        # Get-HnsNetwork seen printing nothing beats any network JSON elsewhere in the text (often a request).
        part.facts["hns_networks"] = _Candidate(_PRIO_PROBES, path, Fact((), f"{path}: Get-HnsNetwork"))
    if facts.node_name and not nodes:
        part.names.append((3, facts.node_name))
    if facts.network_hint:
        part.facts["network_hint"] = _Candidate(_PRIO_FILE, path, facts.network_hint)
    if facts.probes:
        part.connectivity = part.connectivity + tuple(
            ConnectivityResult(
                p.kind, p.target, p.origin, p.ok, p.output, {"from": "text", **({"pod": p.pod} if p.pod else {})}
            )
            for p in facts.probes
        )
    if facts.ipconfig and "ip_config" not in part.facts:
        parse = _parser("diagnostics.parsers.windows:parse_ipconfig")
        try:
            interfaces = parse(facts.ipconfig) if parse is not None else None
        except ValueError:
            interfaces = None
        if interfaces:
            part.facts["ip_config"] = _Candidate(_PRIO_FILE, path, interfaces)


def _read_log(entry: Entry, head: bytes, kind: str, out: _Collected, tmp: Path) -> None:
    """Stream a log through the analyzer: in place for a directory, via a temporary file otherwise."""
    log_kind = LOG_KINDS[kind]
    try:
        from diagnostics.logs import scan_file
    except ImportError:
        out.skipped.append({"path": entry.path, "reason": "the log analyzer is not available"})
        return
    if entry.fs_path is not None:
        fs_path = entry.fs_path
        size = entry.size
    else:
        fs_path = tmp / "member.log"
        with fs_path.open("wb") as fh:
            fh.write(head)
            shutil.copyfileobj(entry.stream, fh, 1024 * 1024)
            size = fh.tell()
    command_output: str | None = None
    if log_kind in ("describe", "transcript"):  # command output: kubectl tables and versions in it count too
        with open(fs_path, "rb") as fh:
            command_output = decode_text(fh.read(TEXT_FACTS_BYTES))
    try:
        hits = [dataclasses.replace(h, source=entry.path) for h in scan_file(fs_path, kind=log_kind)]
    except (ValueError, OSError) as exc:
        out.skipped.append({"path": entry.path, "reason": f"unreadable {kind}: {exc}"})
        return
    finally:
        if entry.fs_path is None:
            fs_path.unlink(missing_ok=True)
    part = _NodePart(entry.path, kind, log_kind=log_kind, log_hits=hits)
    if command_output is not None:
        _read_text_facts(entry.path, command_output, part, out)
    out.parts.append(part)
    out.inputs.append({"path": entry.path, "kind": kind, "bytes": size})


def _read_structured(path: str, kind: str, data: bytes, out: _Collected) -> str | None:
    """Parse one non-log file into ``out``; return the input kind it counted as, or None if skipped."""
    if kind in PARSERS:
        return _read_parsed(path, kind, data, out)
    if kind in FILE_KINDS:
        name = FILE_KINDS[kind]
        text = decode_text(data)
        out.parts.append(_NodePart(path, kind, files={name: _Candidate(_PRIO_FILE, path, text)}))
        return kind
    if kind == K8S_OBJECTS:
        return _read_objects(path, data, out)
    reader = _SPECIAL_READERS.get(kind)
    if reader is None:
        out.skipped.append({"path": path, "reason": f"{kind}: not used by any check"})
        return None
    try:
        return reader(path, data, out)
    except (ValueError, TypeError, KeyError, AttributeError, ImportError, RecursionError) as exc:
        out.skipped.append({"path": path, "reason": f"unreadable {kind}: {_one_line(exc)}"})
        return None


def _read_parsed(path: str, kind: str, data: bytes, out: _Collected) -> str | None:
    text = decode_text(data)
    part = _NodePart(path, kind)
    errors: list[str] = []
    for field_name, parser in PARSERS[kind]:
        func = _parser(parser)
        if func is None:
            errors.append(f"no parser for {kind} yet ({parser})")
            continue
        try:
            value = func(text)
        except ValueError as exc:
            errors.append(_one_line(exc))
            continue
        except Exception as exc:  # a parser bug must cost this file only, never the whole bundle
            log.exception("parser %s failed on %s", parser, path)
            errors.append(f"parser error {type(exc).__name__}: {_one_line(exc)}")
            continue
        if value is None:
            continue
        part.facts[field_name] = _Candidate(_PRIO_FILE, path, value)
    if kind == "ip-config":
        match = _HOST_NAME_RE.search(text)
        if match:
            part.names.append((3, match.group(1).lower()))
    if not part.facts:
        reason = "; ".join(errors) or "nothing readable in it"
        out.skipped.append({"path": path, "reason": f"unreadable {kind}: {reason}"})
        return None
    out.parts.append(part)
    return kind


def _parser(spec: str) -> Callable[..., Any] | None:
    """The parser function named ``module:function``, or None while it does not exist."""
    module_name, func_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    func = getattr(module, func_name, None)
    return func if callable(func) else None


def decode_text(data: bytes) -> str:
    """A file's bytes as text: UTF-16 (PowerShell ``>``) or UTF-8, as ``diagnostics.parsers.powershell`` decodes it."""
    decoder = _parser("diagnostics.parsers.powershell:decode_output")
    if decoder is not None:
        try:
            return str(decoder(data))
        except ValueError:
            pass
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le", errors="replace")
    if data.startswith(b"\xfe\xff"):
        return data[2:].decode("utf-16-be", errors="replace")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", errors="replace")


# -- Kubernetes objects ------------------------------------------------------------


def _read_objects(path: str, data: bytes, out: _Collected) -> str | None:
    text = decode_text(data)
    try:
        documents = _load_documents(path, text)
    except ValueError as exc:
        out.skipped.append({"path": path, "reason": _one_line(exc)})
        return None
    objects = list(_expand(documents, path))
    usable = [o for o in objects if _usable_kind(o)]
    empty_lists = {k for k in (_empty_list_kind(d, path) for d in documents) if k and _usable_kind({"kind": k})}
    if empty_lists and not usable:
        # An empty EventList says "no events": collected, and empty, is not the same as unknown.
        out.empty_kinds.update((k, path) for k in empty_lists)
        return next(iter(empty_lists)).lower() if len(empty_lists) == 1 else K8S_OBJECTS
    if not usable:
        kinds = sorted({str(o.get("kind")) for o in objects}) or ["none"]
        out.skipped.append(
            {"path": path, "reason": f"no Kubernetes objects the checks read (found: {', '.join(kinds)[:120]})"}
        )
        return None
    out.objects.extend((path, o) for o in usable)
    found = {str(o.get("kind", "")).lower() for o in usable}
    return found.pop() if len(found) == 1 else K8S_OBJECTS


_YAML_ALIAS = re.compile(r"(^|[\s\[{,:-])\*[A-Za-z0-9_-]+")
MAX_YAML_ALIASES = 100


def _load_documents(path: str, text: str) -> list[Any]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return [json.loads(text)]
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        except ValueError as exc:
            if path.lower().endswith(".json"):
                raise ValueError(f"invalid JSON: {_one_line(exc)}") from None
    try:
        import yaml
    except ImportError:
        raise ValueError("YAML file, but PyYAML is not installed") from None
    # Aliases expand to shared references; many of them are how a "billion laughs" file hurts.
    if len(_YAML_ALIAS.findall(text)) > MAX_YAML_ALIASES:
        raise ValueError(f"more than {MAX_YAML_ALIASES} YAML aliases; refusing to expand them")
    try:
        # The C loader (libyaml) when PyYAML has it: the same documents, many times faster.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise ValueError("YAML nested too deeply") from None


def _expand(documents: Iterable[Any], path: str) -> Iterator[dict[str, Any]]:
    """API objects out of documents: single objects, ``List``s / ``PodList``s, and bare arrays."""
    hint = _kind_from_path(path)
    for doc in documents:
        if isinstance(doc, list):
            yield from _expand(doc, path)
            continue
        if not isinstance(doc, dict):
            continue
        kind = doc.get("kind")
        items = doc.get("items")
        if isinstance(items, list) and (kind is None or (isinstance(kind, str) and kind.endswith("List"))):
            item_kind = kind[: -len("List")] if isinstance(kind, str) and kind != "List" else hint
            for item in items:
                if isinstance(item, dict):
                    if "kind" not in item and item_kind:
                        item = {"kind": item_kind, **item}
                    yield item
            continue
        if kind is None and hint and isinstance(doc.get("metadata"), dict):
            doc = {"kind": hint, **doc}
        yield doc


def _empty_list_kind(doc: Any, path: str) -> str | None:
    if not isinstance(doc, dict) or doc.get("items") != []:
        return None
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and kind != "List":
        return kind[: -len("List")]
    return _kind_from_path(path) if kind is None else None


def _kind_from_path(path: str) -> str | None:
    """troubleshoot.sh stores ``cluster-resources/pods/<ns>.json`` as lists without their kind."""
    parts = [p.lower() for p in path.split("/")]
    stem = parts[-1].rsplit(".", 1)[0]
    for word, kind in _PATH_KIND_HINTS:
        if stem == word or (len(parts) >= 2 and parts[-2] == word):
            return kind
    return None


def _usable_kind(obj: dict[str, Any]) -> bool:
    kind = obj.get("kind")
    if not isinstance(kind, str) or not isinstance(obj.get("metadata", {}), dict):
        return False
    return kind in _CONTROLLER_KINDS or kind in {"Node", "Pod", "Event", "Service", "EndpointSlice"}


# -- our own formats and tools' metadata --------------------------------------------


def _read_manifest(path: str, data: bytes, out: _Collected) -> str:
    manifest = json.loads(decode_text(data))
    if not isinstance(manifest, dict):
        raise ValueError("manifest.json is not an object")
    part = _NodePart(path, "bundle-manifest", is_root=True)
    node = manifest.get("node")
    if isinstance(node, str) and node:
        part.names.append((0, node))
    part.collected_at = str(manifest.get("collected_at") or "")
    part.agent_version = str(manifest.get("agent_version") or "")
    part.cluster = str(manifest.get("cluster") or "")
    # Files of the node as the manifest lists them: their Windows path, and which were absent.
    # Paths in the manifest are relative to its folder; keys here are paths in the bundle.
    folder = _parent(path)
    for item in manifest.get("files") or []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            listed = item["path"].replace("\\", "/").lstrip("/")
            part.manifest_files[f"{folder}/{listed}" if folder else listed] = item
    out.parts.append(part)
    return "bundle-manifest"


def _read_report(path: str, data: bytes, out: _Collected) -> str:
    from diagnostics.report import parse_report, snapshot_from_report

    report = parse_report(json.loads(decode_text(data)))
    snap = snapshot_from_report(report)
    part = _NodePart(path, "node-report", is_root=True)
    part.names.append((0, report.node))
    part.collected_at = snap.collected_at
    part.agent_version = snap.agent_version
    part.cluster = snap.cluster
    part.connectivity = snap.connectivity
    for f in dataclasses.fields(NodeSnapshot):
        if f.name in PARSER_FIELDS and getattr(snap, f.name) is not None:
            fact = getattr(snap, f.name)
            part.facts[f.name] = _Candidate(_PRIO_REPORT, path, Fact(fact.value, f"{path}#{fact.source}"))
    for name, ff in snap.files.items():
        part.files[name] = _Candidate(_PRIO_REPORT, path, ff)
    part.log_hits = [dataclasses.replace(h, source=f"{path}#{h.source}") for h in snap.log_hits]
    out.parts.append(part)
    return "node-report"


def _read_probe_outputs(path: str, data: bytes, out: _Collected) -> str | None:
    """``node/probes.json`` of an exported bundle: the report's raw probe outputs, parsed as the dashboard does."""
    from diagnostics.probes import PROBES_BY_ID

    raw = json.loads(decode_text(data))
    if isinstance(raw, dict) and isinstance(raw.get("probes"), dict):
        raw = raw["probes"]
    if not isinstance(raw, dict):
        raise ValueError("expected an object of probe id -> result")
    part = _NodePart(path, "probe-outputs")
    for probe_id, result in raw.items():
        spec = PROBES_BY_ID.get(probe_id)
        if spec is None or not isinstance(result, dict) or result.get("error"):
            continue
        output = result.get("output")
        if not isinstance(output, str):
            continue
        try:
            value = spec.parse(output)
        except (ValueError, ImportError, AttributeError):
            continue
        part.facts[spec.field] = _Candidate(_PRIO_PROBES, path, Fact(value, f"{path}#{probe_id}"))
    if not part.facts:
        out.skipped.append({"path": path, "reason": "no probe output the checks read"})
        return None
    out.parts.append(part)
    return "probe-outputs"


def _read_version(path: str, data: bytes, out: _Collected) -> str:
    version = json.loads(decode_text(data))
    if isinstance(version, dict) and isinstance(version.get("info"), dict):
        version = version["info"]  # troubleshoot.sh's cluster-info/cluster_version.json
    git = version.get("gitVersion") if isinstance(version, dict) else None
    if not isinstance(git, str):
        raise ValueError("no gitVersion in it")
    out.server_version = (git, path)
    return "cluster-version"


def _read_aks_config(path: str, data: bytes, out: _Collected) -> str:
    """AKS ``kubeclusterconfig.json``: the cluster and service CIDRs, wherever they sit in it."""
    config = json.loads(decode_text(data))
    found = dict(_find_keys(config, {"clustercidr", "servicecidr"}))
    if not found:
        raise ValueError("no ClusterCidr / ServiceCidr in it")
    if "clustercidr" in found:
        out.cluster_cidr = (found["clustercidr"], path)
    if "servicecidr" in found:
        out.service_cidr = (found["servicecidr"], path)
    return "aks-cluster-config"


def _find_keys(value: Any, wanted: set[str], depth: int = 0) -> Iterator[tuple[str, str]]:
    if depth > 20:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in wanted and isinstance(item, str) and item:
                yield key.lower(), item
            else:
                yield from _find_keys(item, wanted, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _find_keys(item, wanted, depth + 1)


def _read_findings(path: str, data: bytes, out: _Collected) -> None:
    out.skipped.append({"path": path, "reason": "findings of an earlier run; the checks run again instead"})
    return None


_SPECIAL_READERS: dict[str, Callable[[str, bytes, _Collected], str | None]] = {
    "bundle-manifest": _read_manifest,
    "node-report": _read_report,
    "probe-outputs": _read_probe_outputs,
    "cluster-version": _read_version,
    "aks-cluster-config": _read_aks_config,
    "findings": _read_findings,
}

PARSER_FIELDS = frozenset(field_name for specs in PARSERS.values() for field_name, _ in specs) | {
    "bitlocker",
}


# -- assembling snapshots ------------------------------------------------------------


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _node_roots(parts: list[_NodePart]) -> set[str]:
    roots = {""}
    roots.update(_parent(p.path) for p in parts if p.is_root)
    # A folder per node: the same kind of node data under two or more top-level folders.
    by_top: dict[str, set[str]] = {}
    for p in parts:
        if "/" in p.path and p.kind not in ("bundle-manifest",):
            by_top.setdefault(p.path.split("/", 1)[0], set()).add(p.kind)
    tops = [top for top in by_top if top.lower() not in _LAYOUT_FOLDERS]
    shared = any(by_top[a] & by_top[b] for i, a in enumerate(tops) for b in tops[i + 1 :])
    if shared:
        roots.update(tops)
    roots.update(top for top in tops if _NODE_NAME_RE.match(top))
    return roots


def _root_of(path: str, roots: set[str]) -> str:
    best = ""
    for root in roots:
        if root and (path == root or path.startswith(root + "/")) and len(root) > len(best):
            best = root
    return best


def _assemble(collected: _Collected, source: BundleSource, *, wanted: str | None = None) -> list[NodeSnapshot]:
    roots = _node_roots(collected.parts)
    grouped: dict[str, list[_NodePart]] = {}
    for part in collected.parts:
        grouped.setdefault(_root_of(part.path, roots), []).append(part)

    api = _ApiObjects(collected.objects, collected.empty_kinds)
    windows_nodes = api.windows_node_names()

    named: dict[str, list[_NodePart]] = {}
    for root, parts in grouped.items():
        name = _root_name(root, parts, source, api, len(grouped))
        named.setdefault(name, []).extend(parts)

    names = list(named)
    if not names:
        names = windows_nodes or ([UNKNOWN_NODE] if collected.objects else [])
    elif UNKNOWN_NODE in named and len(windows_nodes) > 1:
        # Node-side text of no known node beside several Windows nodes (a paste of kubectl output):
        # each Windows node is checked on its own too, the unnamed text stays with "unknown".
        names += [n for n in windows_nodes if n not in named]
    # A node asked for by name that the bundle only knows from the API still gets its snapshot.
    if wanted and wanted.lower() not in {n.lower() for n in names}:
        names += [n for n in api.node_names() if n.lower() == wanted.lower()]
    names.sort(key=lambda n: (n == UNKNOWN_NODE, n))

    cluster_view = api.cluster_view(collected)
    snapshots = []
    for index, name in enumerate(names):
        snap = _node_snapshot(name, named.get(name, []))
        snap = api.attach(snap, include_workloads=index == 0, cluster_view=cluster_view)
        snapshots.append(snap)
    return snapshots


def _root_name(root: str, parts: list[_NodePart], source: BundleSource, api: _ApiObjects, root_count: int) -> str:
    candidates = [name for p in parts for name in p.names]
    folder = root.rsplit("/", 1)[-1] if root else source.name
    match = _NODE_NAME_RE.match(folder)
    if match:
        candidates.append((1, match.group("node").lower()))
    if root:
        candidates.append((4, folder.lower()))
    if not candidates and root_count == 1:
        only = api.only_node_name()
        if only:
            candidates.append((5, only))
    if not candidates:
        return UNKNOWN_NODE
    return min(candidates)[1]


def _best(cands: Iterable[_Candidate]) -> _Candidate | None:
    return min(cands, key=lambda c: (c.priority, c.path), default=None)


def _node_snapshot(name: str, parts: list[_NodePart]) -> NodeSnapshot:
    facts: dict[str, list[_Candidate]] = {}
    files: dict[str, list[_Candidate]] = {}
    manifest_files: dict[str, dict[str, Any]] = {}
    logs_seen: dict[str, str] = {}
    hits: list[LogHit] = []
    meta = {"collected_at": "", "agent_version": "", "cluster": ""}
    connectivity: list[ConnectivityResult] = []
    for part in sorted(parts, key=lambda p: p.path):
        for key, cand in part.facts.items():
            facts.setdefault(key, []).append(cand)
        for key, cand in part.files.items():
            files.setdefault(key, []).append(cand)
        manifest_files.update(part.manifest_files)
        if part.log_kind and (
            part.log_kind not in logs_seen or len(base_name(part.path)) < len(base_name(logs_seen[part.log_kind]))
        ):
            logs_seen[part.log_kind] = part.path  # kubelet.log names the kind better than kubelet.err.log
        hits.extend(part.log_hits)
        for key in meta:
            meta[key] = meta[key] or getattr(part, key)
        connectivity.extend(part.connectivity)

    values: dict[str, Any] = {}
    for key, cands in facts.items():
        best = _best(cands)
        if best is not None:
            values[key] = best.value if isinstance(best.value, Fact) else Fact(best.value, best.path)
    file_facts: dict[str, FileFact] = {}
    for key, cands in files.items():
        best = _best(cands)
        if best is None:
            continue
        if isinstance(best.value, FileFact):
            file_facts[key] = best.value
        else:
            file_facts[key] = FileFact(
                path=_windows_path(key, best.path, manifest_files), content=best.value, source=best.path
            )
    # The manifest may say a known file was absent on the node: that is a fact too.
    for listed_path, item in manifest_files.items():
        logical = item.get("name") or base_name(listed_path)
        if item.get("exists") is False and isinstance(logical, str) and logical not in file_facts:
            windows = item.get("windows_path") or item.get("source_path") or listed_path
            file_facts[logical] = FileFact(path=str(windows), content=None, source=listed_path)
    return NodeSnapshot(
        node=name,
        cluster=meta["cluster"],
        collected_at=meta["collected_at"],
        agent_version=meta["agent_version"],
        files=file_facts,
        logs_seen=logs_seen,
        log_hits=tuple(hits),
        connectivity=tuple(connectivity),
        **values,
    )


def _windows_path(logical: str, bundle_path: str, manifest_files: dict[str, dict[str, Any]]) -> str:
    """Where the file lives on the node: the manifest says so, else the usual place for that name."""
    listed = manifest_files.get(bundle_path)
    if listed:
        for key in ("windows_path", "source_path", "node_path"):
            if isinstance(listed.get(key), str):
                return str(listed[key])
    from diagnostics.probes import KNOWN_FILES

    for known in KNOWN_FILES:
        if known.name == logical and known.default_path.rsplit("\\", 1)[-1].lower() == base_name(bundle_path).lower():
            return known.default_path
    return bundle_path


# -- the API side ------------------------------------------------------------------


class _ApiObjects:
    """The bundle's Kubernetes objects, sorted to the node they concern."""

    def __init__(self, objects: list[tuple[str, dict[str, Any]]], empty: Iterable[tuple[str, str]] = ()) -> None:
        self.empty = {kind: path for kind, path in sorted(empty)}
        self.by_kind: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for path, obj in objects:
            self.by_kind.setdefault(str(obj.get("kind")), []).append((path, obj))

    def _of(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return self.by_kind.get(kind, [])

    def node_names(self) -> list[str]:
        return sorted({_name(o) for _p, o in self._of("Node") if _name(o)})

    def windows_node_names(self) -> list[str]:
        """Only Windows nodes get snapshots: the checks are about them (Linux nodes are context)."""
        return sorted({_name(o) for _p, o in self._of("Node") if _is_windows_node(o) and _name(o)})

    def only_node_name(self) -> str | None:
        names = self.windows_node_names()
        return names[0] if len(names) == 1 else None

    def cluster_view(self, collected: _Collected) -> ClusterView | None:
        services = tuple(o for _p, o in self._of("Service"))
        slices = tuple(o for _p, o in self._of("EndpointSlice"))
        server = collected.server_version
        if not (services or slices or server or collected.cluster_cidr or collected.service_cidr):
            return None
        sources = sorted({p for p, _o in self._of("Service") + self._of("EndpointSlice")})
        if server:
            sources.append(server[1])
        return ClusterView(
            server_version=server[0] if server else "",
            cluster_cidr=collected.cluster_cidr[0] if collected.cluster_cidr else "",
            service_cidr=collected.service_cidr[0] if collected.service_cidr else "",
            services=services,
            endpoint_slices=slices,
            source=", ".join(sources),
        )

    def _empty_fact(self, kind: str, default: Any) -> Any:
        """Objects of ``kind`` were collected (even an empty list): none for this node is a fact, not unknown."""
        if self._of(kind) or kind in self.empty:
            paths = sorted({p for p, _o in self._of(kind)} | ({self.empty[kind]} if kind in self.empty else set()))
            return Fact((), ", ".join(paths))
        return default

    def attach(self, snap: NodeSnapshot, *, include_workloads: bool, cluster_view: ClusterView | None) -> NodeSnapshot:
        wanted = snap.node.lower()
        node_obj = next(((p, o) for p, o in self._of("Node") if _name(o).lower() == wanted), None)
        node_name = _name(node_obj[1]) if node_obj else snap.node
        pods = [(p, o) for p, o in self._of("Pod") if str(_dict(o.get("spec")).get("nodeName", "")).lower() == wanted]
        pod_keys = {(_namespace(o), _name(o)) for _p, o in pods}
        events = [(p, o) for p, o in self._of("Event") if _event_concerns(o, node_name, pod_keys)]
        workloads: list[dict[str, Any]] = []
        if include_workloads:
            workloads = [o for kind in sorted(_CONTROLLER_KINDS) for _p, o in self._of(kind)]
            workloads += [o for _p, o in self._of("Pod") if not _dict(o.get("spec")).get("nodeName")]
        peers = tuple(
            PeerSummary(node=_name(o), facts=_peer_facts(o))
            for _p, o in self._of("Node")
            if _is_windows_node(o) and _name(o).lower() != wanted
        )
        view = cluster_view
        if peers:
            view = dataclasses.replace(view or ClusterView(), peers=peers)
        return dataclasses.replace(
            snap,
            node_object=Fact(node_obj[1], node_obj[0]) if node_obj else snap.node_object,
            pods=_fact_of(pods) if pods else self._empty_fact("Pod", snap.pods),
            events=_fact_of(events) if events else self._empty_fact("Event", snap.events),
            workloads=tuple(workloads) or snap.workloads,
            cluster_view=view,
        )


def _fact_of(items: list[tuple[str, dict[str, Any]]]) -> Fact[tuple[dict[str, Any], ...]]:
    paths = sorted({p for p, _o in items})
    return Fact(tuple(o for _p, o in items), ", ".join(paths))


def _dict(value: Any) -> dict[str, Any]:
    """A field of an API object as a dict; anything else (a hostile or broken file) as empty."""
    return value if isinstance(value, dict) else {}


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def _namespace(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("namespace", "") or "default") if isinstance(meta, dict) else "default"


def _is_windows_node(node: dict[str, Any]) -> bool:
    labels = _dict(_dict(node.get("metadata")).get("labels"))
    info = _dict(_dict(node.get("status")).get("nodeInfo"))
    return (
        str(labels.get("kubernetes.io/os", labels.get("beta.kubernetes.io/os", ""))).lower() == "windows"
        or str(info.get("operatingSystem", "")).lower() == "windows"
    )


def _event_concerns(event: dict[str, Any], node_name: str, pod_keys: set[tuple[str, str]]) -> bool:
    target = _dict(event.get("involvedObject") or event.get("regarding"))
    kind = target.get("kind")
    name = str(target.get("name", ""))
    if kind == "Node":
        return name.lower() == node_name.lower()
    if kind == "Pod":
        return (str(target.get("namespace") or _namespace(event)), name) in pod_keys
    return False


def _peer_facts(node: dict[str, Any]) -> dict[str, str]:
    info = _dict(_dict(node.get("status")).get("nodeInfo"))
    keys = {
        "runtime_version": "containerRuntimeVersion",
        "kubelet_version": "kubeletVersion",
        "kube_proxy_version": "kubeProxyVersion",
        "kernel_version": "kernelVersion",
        "os_image": "osImage",
    }
    return {ours: str(info[theirs]) for ours, theirs in keys.items() if info.get(theirs)}


def _select(snapshots: list[NodeSnapshot], node: str | None) -> list[NodeSnapshot]:
    if node is None:
        return snapshots
    wanted = node.lower()
    chosen = [s for s in snapshots if s.node.lower() == wanted]
    if chosen:
        return chosen
    if len(snapshots) == 1 and snapshots[0].node == UNKNOWN_NODE:
        return [dataclasses.replace(snapshots[0], node=node)]
    have = ", ".join(s.node for s in snapshots) or "none"
    raise BundleError(f"node {node!r} is not in this bundle (nodes found: {have})")


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]
