"""Build real archives from the fixture folders at test time (no binary archives in the repository)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bundles"


def files_of(folder: Path) -> list[tuple[str, bytes]]:
    return [(p.relative_to(folder).as_posix(), p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()]


def make_zip(folder: Path, dest: Path, *, backslashes: bool = False, prefix: str = "") -> Path:
    """A zip of ``folder``; ``backslashes`` stores names as Windows PowerShell 5.1's Compress-Archive does."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files_of(folder):
            name = prefix + rel
            if backslashes:
                name = name.replace("/", "\\")
            zf.writestr(name, data)
    return dest


def make_targz(folder: Path, dest: Path, *, prefix: str = "") -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        for rel, data in files_of(folder):
            add_member(tf, prefix + rel, data)
    return dest


def add_member(tf: tarfile.TarFile, name: str, data: bytes, *, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def raw_zip(dest: Path, members: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(dest, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return dest
