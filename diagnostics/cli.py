"""``diagnose``: run every check a bundle's data allows, and print the findings.

The same core serves ``python manage.py diagnose`` (a thin Django command) and
``python -m diagnostics`` (no Django at all). Contract (spec/BUNDLE.md):

- ``-o json`` (``--format json``) prints one ``findings/v1`` object on stdout and nothing else;
- exit codes, for pipelines (as troubleshoot.sh's preflight does):
  0 nothing failing (or only ``info`` findings), 3 at least one failing ``critical`` finding,
  4 failing ``warning`` findings and no critical one, 2 unusable input (no such path, not a
  bundle, corrupt archive: one line on stderr, nothing on stdout); ``--exit-zero`` keeps 0
  whatever was found;
- ``--list-checks`` lists the registered checks (``{"checks": [...]}`` in JSON);
- no database, Redis or cluster is ever needed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from diagnostics.bundle import BundleError, read_bundle
from diagnostics.model import Finding, FindingsDocument, FixStep, Severity, Status, sort_findings
from diagnostics.registry import all_checks, run

FORMATS = ("text", "json", "markdown")
EXIT_OK = 0
EXIT_UNUSABLE = 2
EXIT_FAIL = 3  # at least one failing critical finding
EXIT_WARN = 4  # failing warnings, no critical one


# -- the core ------------------------------------------------------------------


@dataclass
class Diagnosis:
    """A run's ``findings/v1`` document, and what the text formats say besides: nodes and check count."""

    document: FindingsDocument
    nodes: list[str]
    checks: int


def diagnose(path: str | Path, *, node: str | None = None) -> Diagnosis:
    """Read the bundle and run the checks on each node; ``BundleError`` when the input is unusable."""
    result = read_bundle(path, node=node)
    findings: list[Finding] = []
    for snap in result.snapshots:
        findings.extend(run(snap))
    document = FindingsDocument(findings=findings, inputs=result.inputs, skipped=result.skipped)
    return Diagnosis(document, [s.node for s in result.snapshots], len(all_checks()))


def list_checks() -> list[dict[str, str]]:
    return [spec.to_dict() for spec in sorted(all_checks().values(), key=lambda s: s.id)]


# -- rendering -------------------------------------------------------------------


@dataclass(frozen=True)
class _Style:
    """ANSI styles, or none at all."""

    enabled: bool

    def __call__(self, text: str, *codes: str) -> str:
        if not self.enabled or not codes:
            return text
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"


_SEVERITY_CODES = {Severity.CRITICAL: ("1", "31"), Severity.WARNING: ("1", "33"), Severity.INFO: ("1", "36")}
BOLD, DIM, GREEN = "1", "2", "32"

# Escape sequences and control characters from a hostile bundle must not reach the terminal.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str, *, limit: int | None = None) -> str:
    """Text safe for a terminal: no escape sequences or control characters (tabs and newlines kept)."""
    text = _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def use_color(stream: object) -> bool:
    """Colours only for a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR", "") != "":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):
        return False


def render(diagnosis: Diagnosis, fmt: str, *, color: bool = False) -> str:
    if fmt == "json":
        return json.dumps(diagnosis.document.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return render_markdown(diagnosis)
    return render_text(diagnosis, color=color)


def _split(findings: Iterable[Finding]) -> tuple[list[Finding], list[Finding]]:
    ordered = sort_findings(list(findings))
    return [f for f in ordered if f.status is Status.FAIL], [f for f in ordered if f.status is Status.UNKNOWN]


def causes_first(findings: list[Finding]) -> list[tuple[Finding, int]]:
    """(finding, depth) with each finding caused by another on the same node right after its cause."""
    by_cause: dict[tuple[str, str], list[Finding]] = {}
    present = {(f.node, f.check) for f in findings}
    roots = []
    for f in findings:
        if f.caused_by and (f.node, f.caused_by) in present:
            by_cause.setdefault((f.node, f.caused_by), []).append(f)
        else:
            roots.append(f)
    out: list[tuple[Finding, int]] = []

    def visit(f: Finding, depth: int) -> None:
        out.append((f, depth))
        for child in by_cause.pop((f.node, f.check), []):
            visit(child, depth + 1)

    for f in roots:
        visit(f, 0)
    for rest in by_cause.values():  # a cycle cannot happen, but nothing is ever dropped
        out += [(f, 1) for f in rest]
    return out


def exit_status(document: FindingsDocument) -> int:
    """``EXIT_FAIL`` for a failing critical finding, ``EXIT_WARN`` for failing warnings only, else ``EXIT_OK``."""
    failing = {f.severity for f in document.findings if f.status is Status.FAIL}
    if Severity.CRITICAL in failing:
        return EXIT_FAIL
    if Severity.WARNING in failing:
        return EXIT_WARN
    return EXIT_OK


def _count_line(fails: list[Finding], unknowns: list[Finding]) -> str:
    counts = Counter(f.severity for f in fails)
    parts = [f"{counts.get(sev, 0)} {sev.slug}" for sev in Severity.ordered()]
    return ", ".join(parts) + f"; {len(unknowns)} undecided (missing data)"


def _kinds_line(inputs: list[dict[str, Any]]) -> str:
    kinds = Counter(str(i.get("kind", "?")) for i in inputs)
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(kinds.items()))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_text(diagnosis: Diagnosis, *, color: bool = False) -> str:
    """What an SRE reads in a terminal: worst first, each finding with its evidence and numbered fix."""
    s = _Style(color)
    doc = diagnosis.document
    fails, unknowns = _split(doc.findings)
    out: list[str] = []
    nodes = diagnosis.nodes
    header = f"Windows Node Doctor: {_plural(len(nodes), 'node')} ({', '.join(clean(n) for n in nodes)})"
    out += [s(header, BOLD) + f", {_plural(diagnosis.checks, 'check')}", ""]
    if not fails:
        out += [s("No problems found.", BOLD, GREEN), ""]
    for sev in Severity.ordered():
        group = [f for f in fails if f.severity is sev]
        if not group:
            continue
        out.append(s(f"{sev.label.upper()} ({len(group)})", *_SEVERITY_CODES[sev]))
        out.append("")
        for finding in group:
            if _has_cause(finding, fails):
                out += [s(f"  {clean(finding.title)}: shown under {clean(finding.caused_by)}", DIM), ""]
            else:
                out += _text_finding(finding, s, fails)
    if unknowns:
        out.append(s(f"UNDECIDED ({len(unknowns)}): these checks need data the bundle does not have", BOLD))
        for f in unknowns:
            out.append(f"  ? {clean(f.check)} [{clean(f.node)}]: {clean(f.summary, limit=200)}")
        out.append("")
    out.append(s("Summary: ", BOLD) + _count_line(fails, unknowns))
    if doc.inputs:
        out.append(
            f"Read {len(doc.inputs)} file{'s' if len(doc.inputs) != 1 else ''}: {clean(_kinds_line(doc.inputs))}"
        )
    if doc.skipped:
        out.append(f"Skipped {len(doc.skipped)} file{'s' if len(doc.skipped) != 1 else ''}:")
        shown = doc.skipped[:10]
        for item in shown:
            out.append(
                s(
                    f"  {clean(str(item.get('path', '')), limit=120)}: {clean(str(item.get('reason', '')), limit=160)}",
                    DIM,
                )
            )
        if len(doc.skipped) > len(shown):
            out.append(s(f"  ... and {len(doc.skipped) - len(shown)} more (--format json lists them all)", DIM))
    return "\n".join(out) + "\n"


def _has_cause(f: Finding, fails: list[Finding]) -> bool:
    return bool(f.caused_by) and any(c.check == f.caused_by and c.node == f.node for c in fails)


def _effects(f: Finding, fails: list[Finding]) -> list[Finding]:
    return [e for e in fails if e.caused_by == f.check and e.node == f.node and e is not f]


def _all_effects(f: Finding, fails: list[Finding]) -> list[Finding]:
    found: list[Finding] = []
    for effect in _effects(f, fails):
        found += [effect, *_all_effects(effect, fails)]
    return found


def _text_finding(f: Finding, s: _Style, fails: list[Finding] | None = None) -> list[str]:
    mark = {Severity.CRITICAL: "✗", Severity.WARNING: "!", Severity.INFO: "i"}[f.severity]
    lines = [
        s(f"{mark} {clean(f.title)}", *_SEVERITY_CODES[f.severity])
        + s(f"  [{clean(f.check)}] node {clean(f.node)}", DIM)
        + (s(f" ({clean(f.subject)})", DIM) if f.subject else ""),
    ]
    if f.caused_by:
        lines.append(s(f"  because of {clean(f.caused_by)}", DIM))
    lines += ["  " + line for line in clean(f.summary).splitlines()]
    if f.evidence:
        lines.append(s("  Evidence:", BOLD))
        for e in f.evidence[:8]:
            where = clean(e.source) + (f":{e.line}" if e.line is not None else "")
            excerpt = clean(e.excerpt, limit=400).splitlines() or [""]
            lines.append(f"    {s(where, DIM)}  {excerpt[0]}")
            lines += [f"      {line}" for line in excerpt[1:6]]
        if len(f.evidence) > 8:
            lines.append(s(f"    ... {len(f.evidence) - 8} more (see --format json)", DIM))
    if f.steps:
        lines.append(s("  Fix:", BOLD))
        for i, step in enumerate(f.steps, 1):
            lines.append(f"    {i}. {clean(step.text) or 'Run:'}")
            lines += [f"         {s(clean(c), BOLD)}" for c in step.commands]
    if f.docs:
        lines.append(f"  Docs: {clean(f.docs)}")
    lines.append("")
    for effect in _effects(f, fails or []):
        lines += ["    " + line if line else line for line in _text_finding(effect, s, fails)]
    return lines


def _md(text: str) -> str:
    """Plain text for Markdown prose: HTML special characters escaped, one line."""
    text = clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\n", " ")


def _code(text: str) -> str:
    """Inline code: GitHub shows it literally, so no HTML escaping; a backtick inside widens the delimiters."""
    text = " ".join(clean(text).split())
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _fence(text: str) -> str:
    """A code block whose fence is longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def render_markdown(diagnosis: Diagnosis) -> str:
    """A GitHub issue comment: a header per severity, evidence folded in ``<details>``."""
    doc = diagnosis.document
    fails, unknowns = _split(doc.findings)
    out = ["## Windows Node Doctor findings", ""]
    nodes = ", ".join(_code(n) for n in diagnosis.nodes)
    out += [f"Nodes: {nodes}; {_plural(diagnosis.checks, 'check')} run.", ""]
    out += [f"**Summary:** {_count_line(fails, unknowns)}", ""]
    if not fails:
        out += ["No problems found.", ""]
    for sev in Severity.ordered():
        group = [f for f in fails if f.severity is sev]
        if not group:
            continue
        out += [f"### {sev.label} ({len(group)})", ""]
        ordered: list[Finding] = []
        for f in group:  # each root cause, then what it causes (whatever their severity)
            if not _has_cause(f, fails):
                ordered += [g for g, _depth in causes_first([f, *_all_effects(f, fails)])]
        for f in ordered:
            subject = f" ({_md(f.subject)})" if f.subject else ""
            out += [f"#### {_md(f.title)}", "", f"{_code(f.check)} on node {_code(f.node)}{subject}", ""]
            if f.caused_by:
                out += [f"Because of {_code(f.caused_by)}.", ""]
            out += [_md(f.summary), ""]
            if f.evidence:
                out += ["<details><summary>Evidence</summary>", ""]
                for e in f.evidence:
                    where = clean(e.source) + (f":{e.line}" if e.line is not None else "")
                    out += [_code(where), "", _fence(clean(e.excerpt)), ""]
                out += ["</details>", ""]
            if f.steps:
                out += ["**Fix:**", ""]
                out += markdown_steps(f.steps)
                out.append("")
            if f.docs:
                out += [f"Docs: {_md(f.docs)}", ""]
    if unknowns:
        out += [f"<details><summary>Undecided checks ({len(unknowns)}): missing data</summary>", ""]
        out += [f"- {_code(f.check)} on {_code(f.node)}: {_md(f.summary)}" for f in unknowns]
        out += ["", "</details>", ""]
    if doc.inputs or doc.skipped:
        out += [f"<details><summary>Inputs ({len(doc.inputs)} read, {len(doc.skipped)} skipped)</summary>", ""]
        out += [f"- {_code(str(i.get('path')))}: {_md(str(i.get('kind')))}, {i.get('bytes')} bytes" for i in doc.inputs]
        out += [f"- skipped {_code(str(i.get('path')))}: {_md(str(i.get('reason')))}" for i in doc.skipped]
        out += ["", "</details>", ""]
    return "\n".join(out)


def markdown_steps(steps: Iterable[FixStep], indent: str = "") -> list[str]:
    """Numbered steps: the explanation as prose, the commands in a fenced PowerShell block a reader can copy."""
    out: list[str] = []
    for i, step in enumerate(steps, 1):
        out.append(f"{indent}{i}. {_md(step.text) if step.text else 'Run:'}")
        if step.commands:
            block = _fence("\n".join(clean(c) for c in step.commands)).replace("```\n", "```powershell\n", 1)
            out += ["", f"{indent}   " + block.replace("\n", f"\n{indent}   "), ""]
    return out


def render_checks(checks: list[dict[str, str]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"checks": checks}, indent=2, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        rows = ["| id | severity | title |", "|---|---|---|"]
        rows += [f"| [{_code(c['id'])}]({c['docs']}) | {c['severity']} | {_md(c['title'])} |" for c in checks]
        return "\n".join(rows) + "\n"
    width = max((len(c["id"]) for c in checks), default=10)
    lines = [f"{c['id']:<{width}}  {c['severity']:<8}  {c['title']}" for c in checks]
    lines.append(f"{len(checks)} checks")
    return "\n".join(lines) + "\n"


# -- the command line ---------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments, shared by ``python -m diagnostics`` and ``manage.py diagnose``."""
    parser.add_argument("path", nargs="?", help="a bundle: a directory, a .zip or a .tar.gz")
    parser.add_argument(
        "-o",
        "--output",
        "--format",
        dest="format",
        choices=FORMATS,
        default="text",
        help="output format (default: text)",
    )
    parser.add_argument(
        "--exit-zero",
        action="store_true",
        help="exit 0 even when findings fail (by default: 3 for a critical finding, 4 for warnings only)",
    )
    parser.add_argument("--node", help="only this node of a multi-node bundle (or the name of an unnamed one)")
    parser.add_argument("--list-checks", action="store_true", help="list every registered check and exit")


class UsageError(BundleError):
    """The command line itself is wrong (e.g. no PATH)."""


def execute(
    path: str | None, *, fmt: str = "text", node: str | None = None, list_only: bool = False, color: bool = False
) -> str:
    """The command's whole output as a string; ``BundleError`` for unusable input."""
    return run_command(path, fmt=fmt, node=node, list_only=list_only, color=color)[0]


def run_command(
    path: str | None, *, fmt: str = "text", node: str | None = None, list_only: bool = False, color: bool = False
) -> tuple[str, int]:
    """The command's output and its exit status (``exit_status``); ``BundleError`` for unusable input."""
    if list_only:
        return render_checks(list_checks(), fmt), EXIT_OK
    if not path:
        raise UsageError("a PATH to a bundle is required (or --list-checks)")
    diagnosis = diagnose(path, node=node)
    return render(diagnosis, fmt, color=color), exit_status(diagnosis.document)


def one_line(message: str) -> str:
    return " ".join(clean(message).split())


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """``python -m diagnostics``: returns the exit status."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="python -m diagnostics",
        description="Diagnose Windows Kubernetes nodes from a bundle (directory, .zip or .tar.gz).",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    _quiet_logs()
    try:
        output, status = run_command(
            args.path, fmt=args.format, node=args.node, list_only=args.list_checks, color=use_color(stdout)
        )
    except BundleError as exc:
        stderr.write(f"diagnose: error: {one_line(str(exc))}\n")
        return EXIT_UNUSABLE
    stdout.write(output)
    stdout.flush()
    return EXIT_OK if args.exit_zero else status


def _quiet_logs() -> None:
    """Without a logging setup, a failing check's traceback would go to stderr; its finding says it already."""
    logger = logging.getLogger("diagnostics")
    if not logging.getLogger().handlers and not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
