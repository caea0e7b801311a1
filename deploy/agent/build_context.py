#!/usr/bin/env python3
"""Assemble the build context of the agent's Windows image (deploy/agent/Dockerfile.windows).

    python3 deploy/agent/build_context.py OUT            # downloads the pinned CPython, checks it
    python3 deploy/agent/build_context.py OUT --python-zip python-3.12.10-embed-amd64.zip

OUT receives ``python/``: the CPython embeddable distribution for Windows amd64 (pinned version,
URL and SHA-256, checked), its ``._pth`` file edited so that ``Lib\\site-packages`` is on the
path, and the agent, the diagnostics engine and their dependencies installed there from
``win_amd64`` wheels (``pip install --target --platform win_amd64 --only-binary=:all:``, every
wheel checked against a hash). Nothing runs on Windows, so ``docker buildx build --platform
windows/amd64`` builds the image on Linux: the Dockerfile only copies OUT.

The DaemonSet starts ``%CONTAINER_SANDBOX_MOUNT_POINT%\\python\\python.exe -m agent``; the test of
this script checks that the assembled tree has exactly that layout. Standard library only (plus
the ``pip`` of the Python that runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON_VERSION = "3.12.10"  # the last 3.12 release with Windows binaries
PYTHON_TAG = "312"
PYTHON_URL = f"https://www.python.org/ftp/python/{PYTHON_VERSION}/python-{PYTHON_VERSION}-embed-amd64.zip"
PYTHON_SHA256 = "4acbed6dd1c744b0376e3b1cf57ce906f9dc9e95e68824584c8099a63025a3c3"
SITE_PACKAGES = r"Lib\site-packages"
PROJECTS = (REPO / "deploy" / "agent", REPO / "deploy" / "diagnostics")
REQUIREMENTS = REPO / "deploy" / "agent" / "requirements-windows.txt"


class BuildError(RuntimeError):
    """The context cannot be assembled; the message says what to fix."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_python(cache: Path) -> Path:
    """Download the pinned embeddable zip into ``cache`` once; a cached copy is re-checked by the caller."""
    target = cache / PYTHON_URL.rsplit("/", 1)[1]
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        with urllib.request.urlopen(PYTHON_URL, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
        partial.replace(target)
    return target


def unpack_python(archive: Path, expected_sha256: str, dest: Path) -> Path:
    """Check the archive's SHA-256, unpack it into ``dest`` and return its ``._pth`` file."""
    actual = sha256_of(archive)
    if actual != expected_sha256:
        raise BuildError(f"{archive.name}: SHA-256 is {actual}, expected {expected_sha256}")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    pth = sorted(dest.glob("python*._pth"))
    if len(pth) != 1 or not (dest / "python.exe").exists():
        raise BuildError(f"{archive.name} is not a CPython embeddable distribution (python.exe, one ._pth)")
    return pth[0]


def edit_pth(pth: Path) -> None:
    """Put site-packages on the path and enable ``site`` (the embeddable default has neither).

    The ``._pth`` file replaces ``sys.path`` entirely: its lines are the path, relative to
    python.exe. ``import site`` makes ``.pth`` files of installed packages work too.
    """
    lines = [line.strip() for line in pth.read_text(encoding="utf-8").splitlines()]
    kept = [line for line in lines if line and not line.startswith("#") and line != "import site"]
    if SITE_PACKAGES not in kept:
        kept.append(SITE_PACKAGES)
    pth.write_text("\r\n".join([*kept, "import site", ""]), encoding="utf-8")


def build_wheels(dest: Path) -> list[Path]:
    """Build the agent's and the diagnostics engine's wheels from this repository."""
    dest.mkdir(parents=True, exist_ok=True)
    # With hatchling at hand (the dev set has it), build without fetching it again.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation, "--wheel-dir", str(dest),
         *map(str, PROJECTS)],
        check=True,
    )  # fmt: skip
    return sorted(dest.glob("*.whl"))


def install(wheels: list[Path], site_packages: Path, requirements: Path, python_version: str) -> None:
    """Install the wheels and the pinned Windows dependencies into ``site_packages``, hashes required."""
    with tempfile.TemporaryDirectory() as tmp:
        pinned = Path(tmp) / "requirements.txt"
        own = [f"{wheel.resolve().as_uri()} --hash=sha256:{sha256_of(wheel)}" for wheel in wheels]
        pinned.write_text("\n".join([*own, requirements.read_text(encoding="utf-8")]), encoding="utf-8")
        major, minor = python_version.split(".")[:2]
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--target", str(site_packages), "--platform", "win_amd64", "--implementation", "cp",
             "--python-version", f"{major}.{minor}", "--abi", f"cp{major}{minor}", "--only-binary=:all:",
             "--require-hashes", "--requirement", str(pinned)],
            check=True,
        )  # fmt: skip


def assemble(out: Path, archive: Path, expected_sha256: str, python_version: str = PYTHON_VERSION) -> Path:
    """Build the context in ``out`` (emptied first) and return its ``python`` folder."""
    if out.exists():
        shutil.rmtree(out)
    python = out / "python"
    python.mkdir(parents=True)
    edit_pth(unpack_python(archive, expected_sha256, python))
    with tempfile.TemporaryDirectory() as tmp:
        install(build_wheels(Path(tmp)), python / "Lib" / "site-packages", REQUIREMENTS, python_version)
    # pip writes console scripts for the platform it runs on: Linux launchers are no use on Windows.
    shutil.rmtree(python / "Lib" / "site-packages" / "bin", ignore_errors=True)
    return python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the build context folder (emptied first)")
    parser.add_argument("--python-zip", type=Path, help=f"a local copy of {PYTHON_URL.rsplit('/', 1)[1]}")
    parser.add_argument("--python-sha256", default=PYTHON_SHA256, help="expected SHA-256 of the zip")
    parser.add_argument("--python-version", default=PYTHON_VERSION, help="CPython version the zip holds")
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "cache", help="download folder")
    args = parser.parse_args(argv)
    try:
        archive = args.python_zip or fetch_python(args.cache)
        python = assemble(args.out, archive, args.python_sha256, args.python_version)
    except (BuildError, OSError, subprocess.CalledProcessError) as exc:
        print(f"build_context: {exc}", file=sys.stderr)
        return 1
    print(f"build context ready: {python.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
