"""Secrets corpus: how many planted secrets survive an export (tar.gz, zip), ISSUE.md and the issue link.

Plants every entry of tests/fixtures/secrets/corpus.yaml (invented values in real formats) in a
node's report, logs, files and API objects, exports the node both ways and prints, per place,
the secrets found. Run: ``.venv/bin/python bench/bench_secrets.py``.
"""

from __future__ import annotations

import io
import sys
import tarfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_plus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diagnostics.bundle.issue import issue_url
from diagnostics.bundle.writer import NodeBundle, issue_for, write_bundle
from tests.diagnostics.bundle.exports import findings_of, scenario_report
from tests.diagnostics.bundle.secrets_corpus import load, plant, survivors


def main() -> int:
    entries = load()
    report = scenario_report("subnet-env-missing")
    pods = plant(report, entries)
    node = NodeBundle.from_report(
        report,
        findings=findings_of(report),
        cluster_objects={"pods.json": {"apiVersion": "v1", "kind": "PodList", "items": pods}},
    )
    total = sum(len(e.secrets) for e in entries)
    print(f"corpus: {len(entries)} entries, {total} secret values")
    found: set[tuple[str, str]] = set()
    for fmt in ("tar.gz", "zip"):
        out = io.BytesIO()
        started = time.perf_counter()
        write_bundle(out, [node], fmt=fmt, now=datetime(2026, 11, 24, tzinfo=UTC))
        took = time.perf_counter() - started
        if fmt == "zip":
            with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
                files = {n: zf.read(n).decode() for n in zf.namelist()}
        else:
            with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
                files = {m.name: tf.extractfile(m).read().decode() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]
        left = survivors(files, entries)
        issue = survivors({n: t for n, t in files.items() if n.endswith("ISSUE.md")}, entries)
        print(f"export {fmt:6}: {len({(i, s) for i, s, _ in left})} survivors ({len(issue)} in ISSUE.md), {took:.2f} s")
        found |= {(i, s) for i, s, _ in left}
    title, fields = issue_for(node)
    url = issue_url(title, fields)
    left = survivors({"url": url, "decoded": unquote_plus(url)}, entries)
    print(f"issue link   : {len({(i, s) for i, s, _ in left})} survivors ({len(url)} characters)")
    found |= {(i, s) for i, s, _ in left}
    for entry_id, secret in sorted(found):
        print(f"  survived: {entry_id}: {secret[:12]}...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
