"""Log analyzers: a table of known lines -> check ids, applied to kubelet, kube-proxy,
flanneld, runtime and start-script logs, ``kubectl describe`` output and terminal transcripts.

Contracts:

- ``scan_text``, ``scan_lines`` and ``scan_file`` yield ``LogHit``s with 1-based line numbers,
  in line order except for the held repeats and tail runs yielded at the end (below), and
  never raise on odd text; ``scan_file`` raises ``OSError`` only when the
  file cannot be read, and reads in fixed-size blocks, so memory does not grow with the file.
- Each line is tested with cheap lower-case substring searches (``Pattern.needle``) over a
  whole block before any regular expression runs on the few candidate lines; this keeps
  analysis far above 50 MB/s on ordinary logs.
- A pattern matches one line. Excerpts are the line as written, without the CR, ANSI colour
  codes or surrounding blanks, cut to ``MAX_EXCERPT`` characters.
- Repeats: per source and check, the first ``MAX_HITS_PER_CHECK`` hits are yielded as they
  come; later ones are counted but only the last is kept, and yielded when the input ends (so
  evidence shows both the first occurrences and the latest one).
- "Ends in" patterns (``Pattern.tail``, e.g. flanneld stuck in ``Waiting for the Network to be
  created``) are decided by the analyzer: at the end of the input it looks at the trailing run
  of non-blank lines that match the pattern; when that run is at least ``TAIL_MIN_REPEATS``
  lines long it yields two hits, the run's first and last line. A log that moved on after
  the pattern yields nothing for it.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePath, PureWindowsPath

from diagnostics.snapshot import LogHit

KINDS = ("kubelet", "kube-proxy", "flanneld", "runtime", "start-script", "describe", "transcript")
MAX_EXCERPT = 1000
MAX_HITS_PER_CHECK = 20
TAIL_MIN_REPEATS = 2
BLOCK_CHARS = 1 << 20  # text is analysed in blocks of about this many characters

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass(frozen=True)
class Pattern:
    """A known line. ``needle`` is a lower-case literal the line must contain; ``regex`` (optional)
    must then also match the line (or, with ``context``, one of the lines just above it); ``kinds``
    limits it to some log kinds (None: every kind; ``log`` is text of no known kind, such as a paste)."""

    check: str
    needle: str
    regex: re.Pattern[str] | None = None
    kinds: frozenset[str] | None = None
    tail: bool = False
    context: int = 0  # >0: the regex may match this line or the ``context`` lines above it


def _re(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


def _kinds(*names: str) -> frozenset[str]:
    return frozenset(names)


# Where each family of messages can appear (fewer needles per kind keeps the prefilter fast).
_PROXY_SIDE = _kinds("kube-proxy", "start-script", "transcript")
_PULL_SIDE = _kinds("kubelet", "runtime", "start-script", "transcript", "describe")
_SCRIPT_SIDE = _kinds("start-script", "transcript")


# Sandbox creation failing because the pause (infra) image is built for another Windows build: the OS
# mismatch itself may sit on the line after the one naming the sandbox (klog wraps long errors, and
# people paste them wrapped), so the sandbox is looked for in the few lines above as well.
_SANDBOX = _re(r"sandbox")
_OS_MISMATCH_NEEDLES = (
    "does not match the host operating system",
    "does not match the operating system of the host",
    "0xc0370101",
)
# A component that died: which one is told by the line (or the log it is in).
_COMPONENT = r"(?:kubelet|kube-?proxy|flanneld?|calico-node|felix)"

PATTERNS: tuple[Pattern, ...] = (
    # flannel
    Pattern("flannel.subnet-env-missing", "loadflannelsubnetenv failed"),
    Pattern(
        "flannel.subnet-env-missing",
        "subnet.env",
        _re(r"subnet\.env\W+(?:.{0,40}\W)?(?:no such file|the system cannot find|not found|does not exist)"),
    ),
    Pattern(
        "flannel.waiting-for-network",
        "waiting for the network to be created",
        kinds=frozenset({"flanneld", "start-script", "transcript"}),
        tail=True,
    ),
    # HNS network: kube-proxy told to use a network that does not exist, start scripts finding no adapter
    Pattern("hns.network-missing", "unable to find hns network", kinds=_PROXY_SIDE),
    Pattern("hns.network-missing", "gethnsnewtorkbyname", _re(r"not found|cannot find")),
    Pattern("hns.network-missing", "hnsnetwork", _re(r"hnsnetwork\w*\W.{0,80}not found")),
    Pattern("hns.network-missing", "network adapter", _re(r"network adapter.{0,60}(?:not found|cannot be found)")),
    Pattern("hns.network-missing", "suitable network adapter", _re(r"failed to find a suitable network adapter")),
    Pattern("hns.network-missing", "an adapter was not found"),
    Pattern("hns.network-missing", "environment variable kube_network not initialized", kinds=_PROXY_SIDE),
    Pattern(
        "hns.network-missing", " not found", _re(r"(?:proxier|hnsv2|hns)\w*\.go:\d+\]\s+network\s+\S+\s+not found")
    ),
    Pattern(
        "hns.network-missing",
        "doesn't exist",
        _re(r"^\W*(?:vethernet \()?[\w ().-]*ethernet[\w ()#-]*\)? doesn't exist"),
    ),
    Pattern("hns.network-missing", "waiting for interface named", _re(r"vethernet")),
    # pause / sandbox images: only an OS or infra-image signal makes a sandbox failure the pause image's
    *(Pattern("pause.image-incompatible", needle, _SANDBOX, context=4) for needle in _OS_MISMATCH_NEEDLES),
    Pattern("pause.image-incompatible", "no matching manifest", _re(r"pause")),
    Pattern("pause.image-incompatible", "image operating system", _re(r"pause|sandbox")),
    Pattern("pause.wincat-missing", "wincat not found"),
    Pattern("pause.wincat-missing", "wincat.exe", _re(r"not found|cannot find|not recognized")),
    # images
    *(Pattern("image.os-version-mismatch", needle) for needle in _OS_MISMATCH_NEEDLES),
    Pattern("image.os-version-mismatch", "image operating system", _re(r"cannot be used on this platform")),
    # runtime
    Pattern("runtime.version-unsupported", "unknown service runtime.v1.runtimeservice"),
    Pattern("runtime.version-unsupported", "dockershim", _re(r"(?:removed|not supported|unknown flag)")),
    # a component that died: klog fatal lines, Go panics, service wrappers and start scripts saying so
    Pattern("node.components-not-running", "failed to run kubelet"),
    Pattern("node.components-not-running", "exited unexpectedly", _re(_COMPONENT)),
    Pattern("node.components-not-running", "terminated unexpectedly", _re(_COMPONENT + r"\W.{0,40}service")),
    Pattern("node.components-not-running", "panic: ", _re(r"^\W{0,3}panic: ")),
    Pattern("node.components-not-running", "service terminated with", _re(_COMPONENT + r"\W.{0,20}service terminated")),
    Pattern(
        "node.components-not-running",
        "is not running",
        _re(_COMPONENT + r"(?:\.exe)?\W{1,3}(?:service )?is not running"),
    ),
    Pattern(
        "node.components-not-running", "exit status", _re(_COMPONENT + r"(?:\.exe)?\b.{0,40}\bexit status (?!0\b)")
    ),
    Pattern(
        "node.components-not-running",
        "restarting failed container=",
        _re(r"container=(?:kube-proxy|kube-flannel|flannel)"),
    ),
    Pattern(
        "node.components-not-running",
        "crashloopbackoff",
        _re(r"(?:kube-proxy|flannel)[\w.-]*win[\w.-]*\s+\d+/\d+\s+crashloopbackoff"),
    ),
    # proxy / downloads behind a firewall
    Pattern("node.proxy-env-missing", "tls handshake timeout", kinds=_PULL_SIDE),
    Pattern("node.proxy-env-missing", "i/o timeout", _re(r"pull|fetch|download|registry|https?://"), kinds=_PULL_SIDE),
    Pattern(
        "node.proxy-env-missing", "failed to pull image", _re(r"timeout|timed out|deadline exceeded"), kinds=_PULL_SIDE
    ),
    Pattern(
        "node.proxy-env-missing",
        "invoke-webrequest",
        _re(r"unable to connect|timed out|could not be resolved"),
        kinds=_SCRIPT_SIDE,
    ),
    # HNS health
    Pattern("node.hns-crash", "the remote procedure call failed", _re(r"hns|hcn|hcs")),
    Pattern("node.hns-crash", "the rpc server is unavailable", _re(r"hns|hcn|hcs")),
    Pattern("node.hns-crash", "host network service", _re(r"terminated|stopped|not running|crash")),
    Pattern("hns.lb-policy-missing", "policy creation failed", kinds=frozenset({"kube-proxy", "log"})),
    Pattern("hns.lb-policy-missing", "hcncreateloadbalancer", _re(r"failed"), kinds=_PROXY_SIDE | {"log"}),
    Pattern("hns.lb-policy-missing", "hnscall failed", _re(r"polic|loadbalancer|proxier"), kinds=_PROXY_SIDE | {"log"}),
    Pattern("hns.port-exhaustion", "lacked sufficient buffer space"),
    Pattern("hns.port-exhaustion", "no more ports available"),
    Pattern("hns.endpoint-state", "hcncreateendpoint failed", _re(r"^(?!.*source vip)")),
    Pattern("hns.endpoint-state", "endpoint was not found", _re(r"hns|hcn")),
    # An HNS endpoint or network request quoted as JSON (after Settings= / Request= in a trace) whose
    # OutBoundNAT exceptions hold a placeholder instead of CIDRs: the CNI config was never filled in.
    Pattern(
        "cni.exceptionlist",
        "outboundnat",
        _re(r"exception(?:s|list)\W+\[[^\]]*\"(?![\d.:/a-f]+\")[^\"]*(?:<|>|\$|\{\{|__|cidr|subnet)[^\"]*\""),
    ),
    # DNS: a partially qualified name (one or two labels, no cluster domain) that does not resolve
    Pattern(
        "dns.pqdn-unsupported",
        "non-existent domain",
        _re(r"find\s+[a-z0-9-]+\.[a-z0-9-]+(?:\.svc)?\s*:\s*non-existent domain"),
        kinds=frozenset({"transcript", "describe", "log"}),
    ),
    Pattern(
        "dns.pqdn-unsupported",
        "dns name does not exist",
        _re(r"\b[a-z0-9-]+\.[a-z0-9-]+(?:\.svc)?\s*:\s*dns name does not exist"),
        kinds=frozenset({"transcript", "describe", "log"}),
    ),
    # port-forward and the network limitations seen in transcripts
    Pattern("pause.wincat-missing", "unable to do port forwarding", _re(r"wincat")),
)

# Lines no needle can find: a klog fatal line (``F1204 10:02:13.551902    4242 server.go:207] ...``)
# may sit after any prefix (an event-log table's columns, a timestamp), so a regular expression
# runs over the whole block for it; its ``F`` and digits are rare enough to keep this cheap.
FATAL_RE = re.compile(r"F\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+\s+[\w.-]+:\d+\]")  # no lookbehind: it would
# cost the literal-prefix search its speed; the character before the F is checked by hand instead
FATAL_CHECK = "node.components-not-running"


def _patterns_for(kind: str | None) -> tuple[dict[str, tuple[Pattern, ...]], tuple[Pattern, ...]]:
    """Group the patterns that apply to ``kind`` by needle; tail patterns apart."""
    grouped: dict[str, list[Pattern]] = {}
    tails: list[Pattern] = []
    for pattern in PATTERNS:
        if pattern.kinds is not None and kind is not None and kind not in pattern.kinds:
            continue
        if pattern.tail:
            tails.append(pattern)
        else:
            grouped.setdefault(pattern.needle, []).append(pattern)
    return {needle: tuple(ps) for needle, ps in grouped.items()}, tuple(tails)


_CACHE: dict[str | None, tuple[dict[str, tuple[Pattern, ...]], tuple[Pattern, ...]]] = {}


def _table(kind: str | None) -> tuple[dict[str, tuple[Pattern, ...]], tuple[Pattern, ...]]:
    if kind not in _CACHE:
        _CACHE[kind] = _patterns_for(kind)
    return _CACHE[kind]


def clean_line(line: str) -> str:
    """A line as evidence: no CR/LF, no ANSI colour codes, no surrounding blanks, bounded length."""
    text = _ANSI_RE.sub("", line.rstrip("\r\n")).strip()
    return text if len(text) <= MAX_EXCERPT else text[: MAX_EXCERPT - 1] + "…"


def _lower(block: str) -> str:
    """``block`` lower-cased with every character at its place (needle positions index ``block``)."""
    low = block.lower()
    if len(low) != len(block):  # a few characters change length when lower-cased: go char by char
        low = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in block)
    return low


_FATAL = Pattern(FATAL_CHECK, "")


def _matches(pattern: Pattern, text: str, block: str, start: int) -> bool:
    """Whether ``pattern``'s regex matches the line at ``start`` (or, with context, a line just above it)."""
    if pattern.regex is None or pattern.regex.search(text):
        return True
    if not pattern.context:
        return False
    begin = start
    for _ in range(pattern.context):
        if begin <= 0:
            break
        begin = block.rfind("\n", 0, begin - 1) + 1
    return pattern.regex.search(block[begin:start]) is not None


class _Scanner:
    """State across the blocks of one input: line count, per-check caps, the trailing run of a tail pattern."""

    def __init__(self, source: str, kind: str | None) -> None:
        self.source = source
        self.kind = kind
        self.log_kind = kind or "log"
        self.needles, self.tails = _table(kind)
        self.lines_before = 0
        self.emitted: dict[str, int] = {}
        self.held: dict[str, LogHit] = {}
        # For each tail pattern: (first line, first text, last line, last text, count) of the trailing run.
        self.runs: dict[str, tuple[int, str, int, str, int] | None] = {p.check: None for p in self.tails}

    def _emit(self, hit: LogHit) -> LogHit | None:
        count = self.emitted.get(hit.check, 0)
        self.emitted[hit.check] = count + 1
        if count < MAX_HITS_PER_CHECK:
            return hit
        self.held[hit.check] = hit
        return None

    def block(self, block: str) -> list[LogHit]:
        """Analyse one block of whole lines (the last one may lack its newline)."""
        hits: list[LogHit] = []
        low = _lower(block)
        candidates: dict[int, list[Pattern]] = {}
        for needle, patterns in self.needles.items():
            pos = low.find(needle)
            while pos >= 0:
                start = low.rfind("\n", 0, pos) + 1
                candidates.setdefault(start, []).extend(patterns)
                end = low.find("\n", pos)
                if end < 0:
                    break
                pos = low.find(needle, end)
        for match in FATAL_RE.finditer(block):
            before = block[match.start() - 1 : match.start()]
            if before and (before.isalnum() or before in "._"):
                continue
            candidates.setdefault(block.rfind("\n", 0, match.start()) + 1, []).append(_FATAL)
        line_no = self.lines_before + 1
        counted_to = 0
        for start in sorted(candidates):
            line_no += block.count("\n", counted_to, start)
            counted_to = start
            end = block.find("\n", start)
            raw = block[start:] if end < 0 else block[start:end]
            text = clean_line(raw)
            seen: set[str] = set()
            for pattern in candidates[start]:
                if pattern.check in seen or not _matches(pattern, text, block, start):
                    continue
                seen.add(pattern.check)
                hit = self._emit(LogHit(pattern.check, self.source, line_no, text, self.log_kind))
                if hit is not None:
                    hits.append(hit)
        if self.tails:
            self._track_tails(block, low)
        self.lines_before += block.count("\n")
        return hits

    def _track_tails(self, block: str, low: str) -> None:
        """Extend or reset the trailing run of each tail pattern with this block's last lines."""
        for pattern in self.tails:
            end = len(block)
            run_first: tuple[int, str] | None = None
            run_last: tuple[int, str] | None = None
            count = 0
            whole_block = True
            while end > 0:
                start = low.rfind("\n", 0, end - 1) + 1 if end > 1 else 0
                line_end = end - 1 if block[end - 1 : end] == "\n" else end
                segment = low[start:line_end]
                if segment.strip():
                    if pattern.needle not in segment:
                        whole_block = False
                        break
                    run_first = (start, block[start:line_end])
                    if run_last is None:
                        run_last = (start, block[start:line_end])
                    count += 1
                end = start
            previous = self.runs[pattern.check]
            if run_first is None or run_last is None:
                if not whole_block:
                    self.runs[pattern.check] = None
                continue
            first_no = self.lines_before + block.count("\n", 0, run_first[0]) + 1
            last_no = self.lines_before + block.count("\n", 0, run_last[0]) + 1
            if whole_block and previous is not None:
                self.runs[pattern.check] = (previous[0], previous[1], last_no, run_last[1], previous[4] + count)
            else:
                self.runs[pattern.check] = (first_no, run_first[1], last_no, run_last[1], count)

    def finish(self) -> list[LogHit]:
        hits = sorted(self.held.values(), key=lambda h: h.line)
        for check, run in self.runs.items():
            if run is not None and run[4] >= TAIL_MIN_REPEATS:
                first_no, first_text, last_no, last_text, _count = run
                hits.append(LogHit(check, self.source, first_no, clean_line(first_text), self.log_kind))
                hits.append(LogHit(check, self.source, last_no, clean_line(last_text), self.log_kind))
        return hits


def _scan_blocks(blocks: Iterable[str], source: str, kind: str | None) -> Iterator[LogHit]:
    scanner = _Scanner(source, kind)
    for block in blocks:
        if block:
            yield from scanner.block(block)
    yield from scanner.finish()


def _text_blocks(text: str) -> Iterator[str]:
    """Blocks of about ``BLOCK_CHARS`` characters that end at a line break."""
    start = 0
    size = len(text)
    while start < size:
        end = start + BLOCK_CHARS
        if end >= size:
            yield text[start:]
            return
        cut = text.rfind("\n", start, end)
        if cut < 0:
            cut = text.find("\n", end)
            if cut < 0:
                yield text[start:]
                return
        yield text[start : cut + 1]
        start = cut + 1


def scan_text(text: str, *, source: str, kind: str | None = None) -> Iterator[LogHit]:
    """Analyse a whole text (a log tail, a pasted excerpt). ``kind`` None applies every pattern."""
    return _scan_blocks(_text_blocks(text), source, kind)


Match = tuple[str, int, str]  # (check, 1-based line, excerpt) of one line-pattern match


class _MatchScanner(_Scanner):
    """A scanner that keeps every line-pattern match (no per-check cap) and ignores tail patterns."""

    def __init__(self, kind: str | None, lines_before: int) -> None:
        super().__init__("", kind)
        self.tails = ()
        self.lines_before = lines_before

    def _emit(self, hit: LogHit) -> LogHit | None:
        return hit


def scan_matches(text: str, *, kind: str | None = None, lines_before: int = 0) -> list[Match]:
    """Every line-pattern match of ``text`` in scan order, uncapped; line numbers start after ``lines_before``.

    With ``hits_from_matches`` this lets a rolling log tail be analysed incrementally: scan only
    the appended text (numbered after the kept lines), keep the earlier matches, and renumber
    or drop them when the tail's head is trimmed (``shift_matches``). ``text`` must start at a
    line start. The result is the same as ``scan_text`` over the whole tail.
    """
    scanner = _MatchScanner(kind, lines_before)
    return [(h.check, h.line, h.excerpt) for block in _text_blocks(text) for h in scanner.block(block)]


def shift_matches(matches: Iterable[Match], lines_cut: int) -> list[Match]:
    """``matches`` after the first ``lines_cut`` lines were cut from the text: renumbered, cut ones dropped."""
    return [(check, line - lines_cut, excerpt) for check, line, excerpt in matches if line > lines_cut]


def append_to_tail(
    text: str, matches: list[Match] | None, new: str, *, limit: int, kind: str | None = None
) -> tuple[str, list[Match]]:
    """A rolling tail after ``new`` was appended: at most ``limit`` characters, starting at a line
    start when one is in reach, with its ``scan_matches``.

    ``matches`` are the stored matches of ``text`` (None: unknown, scan it whole). Only the
    appended text and the old last line (which ``new`` may continue) are scanned.
    """
    whole = text + new
    if matches is None:
        found = scan_matches(whole, kind=kind)
    else:
        start = text.rfind("\n") + 1
        lines_before = text.count("\n", 0, start)
        kept = [m for m in matches if m[1] <= lines_before]
        found = kept + scan_matches(whole[start:], kind=kind, lines_before=lines_before)
    if len(whole) > limit:
        cut = whole.find("\n", len(whole) - limit)
        if cut != -1:
            return whole[cut + 1 :], shift_matches(found, whole.count("\n", 0, cut + 1))
        whole = whole[-limit:]  # no line break in reach: the tail starts mid-line, scan it whole
        return whole, scan_matches(whole, kind=kind)
    return whole, found


def hits_from_matches(matches: Iterable[Match], text: str, *, source: str, kind: str | None = None) -> list[LogHit]:
    """What ``scan_text(text, source=source, kind=kind)`` yields, given ``scan_matches`` of ``text``.

    Applies the per-check cap (first ``MAX_HITS_PER_CHECK``, then the last one) to the stored
    matches and decides the tail patterns on ``text`` itself (only its end matters).
    """
    scanner = _Scanner(source, kind)
    hits = [h for c, line, e in matches if (h := scanner._emit(LogHit(c, source, line, e, scanner.log_kind)))]
    if scanner.tails:
        for block in _text_blocks(text):
            scanner._track_tails(block, _lower(block))
            scanner.lines_before += block.count("\n")
    return hits + scanner.finish()


def scan_lines(lines: Iterable[str], *, source: str, kind: str | None = None) -> Iterator[LogHit]:
    """Analyse lines (with or without their line ends), e.g. a file object or a tailer's output."""

    def blocks() -> Iterator[str]:
        buf: list[str] = []
        size = 0
        for line in lines:
            line = line.rstrip("\r\n").replace("\n", " ")  # one input line stays one numbered line
            buf.append(line)
            size += len(line) + 1
            if size >= BLOCK_CHARS:
                yield "\n".join(buf) + "\n"
                buf, size = [], 0
        if buf:
            yield "\n".join(buf) + "\n"

    return _scan_blocks(blocks(), source, kind)


def _decoder_for(head: bytes) -> tuple[codecs.IncrementalDecoder, int]:
    """The decoder for a file from its first bytes, and how many BOM bytes to skip."""
    if head.startswith(codecs.BOM_UTF8):
        return codecs.getincrementaldecoder("utf-8")(errors="replace"), 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return codecs.getincrementaldecoder("utf-16-le")(errors="replace"), 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return codecs.getincrementaldecoder("utf-16-be")(errors="replace"), 2
    sample = head[:4096]
    if len(sample) >= 4:
        odd_zero = sample[1::2].count(0)
        even_zero = sample[0::2].count(0)
        half = len(sample) // 2
        if odd_zero > half * 0.6 and even_zero < half * 0.1:  # ASCII text as UTF-16 LE without a BOM
            return codecs.getincrementaldecoder("utf-16-le")(errors="replace"), 0
        if even_zero > half * 0.6 and odd_zero < half * 0.1:
            return codecs.getincrementaldecoder("utf-16-be")(errors="replace"), 0
    return codecs.getincrementaldecoder("utf-8")(errors="replace"), 0


def iter_file_blocks(path: str | os.PathLike[str], *, chunk_bytes: int = BLOCK_CHARS) -> Iterator[str]:
    """Decoded blocks of whole lines of a file (UTF-8 or UTF-16, with or without BOM), in constant memory."""
    with open(path, "rb") as fh:
        head = fh.read(chunk_bytes)
        decoder, skip = _decoder_for(head)
        carry = ""
        data = head[skip:]
        while True:
            final = not data
            text = carry + decoder.decode(data, final=final)
            if final:
                if text:
                    yield text
                return
            cut = text.rfind("\n")
            if cut < 0 and len(text) < 8 * chunk_bytes:
                carry = text  # a very long line: keep reading until it ends (bounded)
            else:
                cut = cut if cut >= 0 else len(text) - 1
                yield text[: cut + 1]
                carry = text[cut + 1 :]
            data = fh.read(chunk_bytes)


def read_head(path: str | os.PathLike[str], limit: int = 8192) -> str:
    """The first characters of a file, decoded as ``scan_file`` would."""
    with open(path, "rb") as fh:
        head = fh.read(limit)
    decoder, skip = _decoder_for(head)
    return decoder.decode(head[skip:], final=False)


def scan_file(path: str | os.PathLike[str], *, kind: str | None = None) -> Iterator[LogHit]:
    """Analyse a log file in fixed-size blocks; ``kind`` is detected from the name and first lines when None."""
    source = os.fspath(path)
    if kind is None:
        kind = detect_kind(PurePath(source).name, read_head(path))
    return _scan_blocks(iter_file_blocks(path), source, kind)


_KUBELET_MARKERS = (
    "kubelet",
    "kuberuntime",
    "cni.go",
    "cni_windows.go",
    "pod_workers.go",
    "remote_runtime.go",
    "docker_sandbox.go",
    "perfcounter_nodestats",
)
_KLOG_RE = re.compile(r"^\W{0,3}[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [\w./-]+:\d+\]", re.MULTILINE)


def detect_kind(name: str, head: str) -> str | None:
    """The log kind of a file from its name (any Windows or POSIX path) and its first lines; None if unknown.

    Names win over content: ``start-kubelet.log`` is start-script output, ``kubelet.err.log``
    a kubelet log. Content sniffing covers files gathered by hand under other names.
    """
    base = PureWindowsPath(name).name.lower()
    stem = base.rsplit(".", 1)[0] if "." in base else base
    if stem.startswith("start"):
        return "start-script"
    if "kube-proxy" in base or "kubeproxy" in base:
        return "kube-proxy"
    if "kubelet" in base:
        return "kubelet"
    if "flannel" in base:
        return "flanneld"
    if "containerd" in base or "docker" in base:
        return "runtime"
    if "describe" in base:
        return "describe"
    if stem.startswith(("transcript", "session")) or "transcript" in base:
        return "transcript"
    text = head[:8192]
    low = text.lower()
    if re.search(r"^Name:\s", text, re.MULTILINE) and re.search(r"^Events:", text, re.MULTILINE):
        return "describe"
    if (
        re.search(r"^PS [A-Za-z]:\\[^>]*>", text, re.MULTILINE)
        or "**********************\nwindows powershell transcript" in low
    ):
        return "transcript"
    if re.search(r'^time="[^"]+" level=\w+ msg=', text, re.MULTILINE):
        return "runtime"
    klog = _KLOG_RE.search(text) is not None
    if klog and any(k in low for k in ("proxier", "winkernel", "server_others", "proxy/")):
        return "kube-proxy"
    if klog and any(k in low for k in ("subnet manager", "found network config - backend type", "vxlan_windows")):
        return "flanneld"
    # A kubelet log may quote flanneld's "Waiting for the Network" (it waits on the same network):
    # kubelet's own files win over that phrase.
    if (klog or "log file created at" in low) and any(k in low for k in _KUBELET_MARKERS):
        return "kubelet"
    if "waiting for the network to be created" in low:
        return "flanneld"
    if klog and any(k in low for k in ("subnet.env", "vxlan", "host-gw", "flannel")):
        return "flanneld"
    return None
