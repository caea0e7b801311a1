"""Safe, streaming access to the files of a bundle: a directory, a ``.zip`` or a tar (``.tar.gz``, ``.tgz``, ...).

Bundles come from strangers (an issue attachment), so nothing here trusts them:

- the format is told by magic bytes, not by the file name;
- member names are checked: absolute paths, drive letters (``C:\\``), UNC names,
  ``..`` (with ``/`` or ``\\``), control characters make the member skipped;
- links (symbolic and hard), devices and FIFOs are skipped, never followed;
- limits on the member count, each member's size, the total uncompressed size and
  the compression ratio are enforced on the bytes actually decompressed, not on
  what headers claim, so a zip bomb stops early;
- members are read as streams; nothing is extracted to disk by this module.

A bundle that cannot be read at all raises ``BundleError`` (a ``ValueError``) with a
one-line message; a single unreadable member raises ``MemberError`` (a subclass)
that the reader turns into a ``skipped`` entry.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

GiB = 1 << 30
MiB = 1 << 20


class BundleError(ValueError):
    """The bundle cannot be read at all; the message (one line) says why."""


class MemberError(BundleError):
    """One member of the bundle cannot be read; the rest of the bundle can."""


@dataclass(frozen=True)
class Limits:
    """What a bundle may cost us. The defaults fit a node's logs with room to spare."""

    max_members: int = 20_000
    max_member_bytes: int = 1 * GiB
    max_total_bytes: int = 2 * GiB
    # Text logs compress 10-30x; deflate cannot exceed ~1030x. Judged only past ``ratio_floor``
    # bytes, so that a small file of repeated lines never trips it.
    max_ratio: float = 200.0
    ratio_floor: int = 16 * MiB
    max_name_length: int = 1024


DEFAULT_LIMITS = Limits()


@dataclass
class Entry:
    """One regular file of the bundle.

    ``stream`` is valid only until the next entry is requested (tar members are read
    in one pass). ``fs_path`` is the file on disk when the bundle is a directory, so a
    log can be scanned in place.
    """

    path: str  # relative, "/"-separated, checked
    size: int  # as declared (directory: stat; zip/tar: header); the stream enforces the limits anyway
    stream: BinaryIO
    fs_path: Path | None = None


def safe_member_path(name: str, *, max_length: int = DEFAULT_LIMITS.max_name_length) -> str:
    """The member name as a clean relative ``a/b/c`` path, or ``MemberError`` saying why it is unsafe.

    Backslashes count as separators: archives made on Windows (``Compress-Archive``)
    store ``logs\\kubelet.log``, and a ``..\\..\\x`` must not slip through.
    """
    if not name:
        raise MemberError("empty member name")
    if len(name) > max_length:
        raise MemberError(f"member name longer than {max_length} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise MemberError("control characters in the member name")
    unified = name.replace("\\", "/")
    if re.match(r"^[A-Za-z]:", unified):
        raise MemberError("absolute Windows path (drive letter) in the member name")
    if unified.startswith("/"):
        raise MemberError("absolute path in the member name")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise MemberError("path traversal ('..') in the member name")
    if any(":" in p for p in parts):
        # A drive letter or an NTFS alternate data stream further down the path.
        raise MemberError("':' in the member name")
    if not parts:
        raise MemberError("member name has no file name")
    return "/".join(parts)


# -- byte accounting -----------------------------------------------------------


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Budget:
    """Bytes decompressed so far against the limits, and compressed bytes read (for the ratio)."""

    def __init__(self, limits: Limits, *, label: str) -> None:
        self.limits = limits
        self.label = label
        self.out = 0
        self.raw_in = 0
        self.members = 0
        self.check_ratio = True

    def count_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise BundleError(
                f"{self.label} has more than {self.limits.max_members} members; refusing to read it (is this a bundle?)"
            )

    def add_out(self, n: int) -> None:
        self.out += n
        if self.out > self.limits.max_total_bytes:
            raise BundleError(
                f"{self.label} expands to more than {_human(self.limits.max_total_bytes)}; "
                "refusing to read it (trim the logs, or unpack the part you need)"
            )
        over_floor = self.check_ratio and self.out > self.limits.ratio_floor and self.raw_in > 0
        if over_floor and self.out / self.raw_in > self.limits.max_ratio:
            raise BundleError(
                f"{self.label} decompresses more than {self.limits.max_ratio:.0f}x its size; "
                "refusing it as a likely decompression bomb"
            )


class _CountingRaw(io.RawIOBase):
    """Counts the bytes read from the compressed file itself."""

    def __init__(self, raw: BinaryIO, budget: _Budget) -> None:
        self._raw = raw
        self._budget = budget

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, b: Any) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        self._budget.raw_in += n
        return n


class _CountingOut(io.RawIOBase):
    """Counts decompressed bytes as they are produced, whoever reads them (tar skips members by reading)."""

    def __init__(self, inner: _Readable, budget: _Budget) -> None:
        self._inner = inner
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._inner.read(len(b))
        n = len(data)
        b[:n] = data
        self._budget.add_out(n)
        return n


class _MemberStream(io.RawIOBase):
    """A member's bytes, cut off with ``MemberError`` past the per-member limit.

    ``count_total`` is set for zip members (their bytes are not counted elsewhere);
    ``ratio_base`` is the member's compressed size, for a per-member ratio check.
    """

    def __init__(
        self,
        inner: _Readable,
        *,
        path: str,
        limits: Limits,
        budget: _Budget | None = None,
        ratio_base: int = 0,
    ) -> None:
        self._inner = inner
        self._path = path
        self._limits = limits
        self._budget = budget
        self._ratio_base = ratio_base
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self._inner.read(len(b))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise MemberError(f"corrupt member {self._path}: {_one_line(exc)}") from None
        except (NotImplementedError, RuntimeError) as exc:
            raise MemberError(f"cannot read member {self._path}: {_one_line(exc)}") from None
        n = len(data)
        b[:n] = data
        self._read += n
        if self._read > self._limits.max_member_bytes:
            raise MemberError(f"{self._path} is larger than {_human(self._limits.max_member_bytes)}")
        if self._budget is not None:
            self._budget.add_out(n)
        if (
            self._ratio_base
            and self._read > self._limits.ratio_floor
            and self._read / self._ratio_base > self._limits.max_ratio
        ):
            raise BundleError(
                f"{self._path} decompresses more than {self._limits.max_ratio:.0f}x its size; "
                "refusing the bundle as a likely decompression bomb"
            )
        return n


def _buffered(raw: io.RawIOBase) -> BinaryIO:
    return cast(BinaryIO, io.BufferedReader(raw, buffer_size=256 * 1024))


# -- opening -------------------------------------------------------------------

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".gz")


def sniff_format(head: bytes) -> str | None:
    """``zip``, ``gzip``, ``bz2``, ``xz``, ``tar`` from a file's first 512 bytes, else None."""
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_BZ2_MAGIC) and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def looks_like_archive_name(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


@dataclass
class BundleSource:
    """An opened bundle: iterate ``entries()`` once; read ``skipped`` afterwards.

    ``name`` is the bundle's own file or folder name (an AKS zip's name carries the
    node's computer name); ``format`` is ``directory``, ``zip``, ``tar`` or ``file``
    (a single file given on its own).
    """

    path: Path
    format: str
    limits: Limits = DEFAULT_LIMITS
    skipped: list[dict[str, str]] = field(default_factory=list)
    _compression: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append({"path": path, "reason": reason})

    def entries(self) -> Iterator[Entry]:
        """Every regular file, in a stable order for directories and archive order otherwise."""
        label = self.path.name or str(self.path)
        budget = _Budget(self.limits, label=label)
        if self.format == "directory":
            yield from self._directory_entries(budget)
        elif self.format == "file":
            yield from self._file_entries(budget)
        elif self.format == "zip":
            yield from self._zip_entries(budget)
        else:
            yield from self._tar_entries(budget)

    # -- directory -----------------------------------------------------------

    def _directory_entries(self, budget: _Budget) -> Iterator[Entry]:
        root = self.path

        def on_error(exc: OSError) -> None:
            self.skip(_rel(root, Path(exc.filename or root)), f"cannot read: {exc.strerror or exc}")

        for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=False):
            dirnames.sort()
            here = Path(dirpath)
            for d in list(dirnames):
                if (here / d).is_symlink():
                    self.skip(_rel(root, here / d), "symbolic link to a directory (not followed)")
                    dirnames.remove(d)
            for fname in sorted(filenames):
                full = here / fname
                rel = _rel(root, full)
                budget.count_member()
                try:
                    st = full.lstat()
                except OSError as exc:
                    self.skip(rel, f"cannot read: {exc.strerror or exc}")
                    continue
                if stat.S_ISLNK(st.st_mode):
                    self.skip(rel, "symbolic link (not followed)")
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self.skip(rel, "not a regular file (device, FIFO or socket)")
                    continue
                if st.st_size > self.limits.max_member_bytes:
                    self.skip(rel, f"larger than {_human(self.limits.max_member_bytes)}")
                    continue
                try:
                    # O_NOFOLLOW: the file may have been swapped for a link since lstat.
                    fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                except OSError as exc:
                    self.skip(rel, f"cannot read: {exc.strerror or exc}")
                    continue
                with os.fdopen(fd, "rb") as fh:
                    stream = _buffered(_MemberStream(fh, path=rel, limits=self.limits))
                    yield Entry(rel, st.st_size, stream, fs_path=full)

    def _file_entries(self, budget: _Budget) -> Iterator[Entry]:
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise BundleError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if self._compression != "gzip":
                stream = _buffered(_MemberStream(fh, path=self.path.name, limits=self.limits))
                yield Entry(self.path.name, size, stream, fs_path=self.path)
                return
            # A lone gzip-compressed file (a rotated kubelet.log.gz): the file inside, limits enforced.
            name = self.path.name[: -len(".gz")] if self.path.name.lower().endswith(".gz") else self.path.name
            with gzip.GzipFile(fileobj=_buffered(_CountingRaw(fh, budget)), mode="rb") as inner:
                stream = _buffered(_MemberStream(inner, path=name, limits=self.limits, budget=budget))
                yield Entry(name, -1, stream)

    # -- zip -----------------------------------------------------------------

    def _zip_entries(self, budget: _Budget) -> Iterator[Entry]:
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise BundleError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with fh:
            counting = _buffered(_CountingRaw(fh, budget))
            try:
                zf = zipfile.ZipFile(counting)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
                raise BundleError(f"{self.path.name}: corrupt or truncated zip archive ({_one_line(exc)})") from None
            with zf:
                seen: set[str] = set()
                for info in zf.infolist():
                    budget.count_member()
                    if info.is_dir():
                        continue
                    try:
                        rel = safe_member_path(info.filename, max_length=self.limits.max_name_length)
                    except MemberError as exc:
                        self.skip(_printable(info.filename), f"unsafe name: {exc}")
                        continue
                    mode = info.external_attr >> 16
                    if mode and stat.S_ISLNK(mode):
                        self.skip(rel, "symbolic link (not followed)")
                        continue
                    if mode and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                        self.skip(rel, "not a regular file")
                        continue
                    if info.flag_bits & 0x1:
                        self.skip(rel, "encrypted member")
                        continue
                    if rel in seen:
                        self.skip(rel, "duplicate member name")
                        continue
                    seen.add(rel)
                    if info.file_size > self.limits.max_member_bytes:
                        self.skip(rel, f"larger than {_human(self.limits.max_member_bytes)}")
                        continue
                    try:
                        inner = zf.open(info)
                    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
                        self.skip(rel, f"corrupt member: {_one_line(exc)}")
                        continue
                    except (NotImplementedError, RuntimeError) as exc:
                        # Deflate64 (Windows Explorer on large files), encryption, ...
                        self.skip(rel, f"cannot read member: {_one_line(exc)}")
                        continue
                    with inner:
                        stream = _buffered(
                            _MemberStream(
                                inner,
                                path=rel,
                                limits=self.limits,
                                budget=budget,
                                ratio_base=max(info.compress_size, 1),
                            )
                        )
                        yield Entry(rel, info.file_size, stream)

    # -- tar -----------------------------------------------------------------

    def _tar_entries(self, budget: _Budget) -> Iterator[Entry]:
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise BundleError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with fh, contextlib.ExitStack() as stack:
            raw = _buffered(_CountingRaw(fh, budget))
            decompressed: _Readable
            if self._compression == "gzip":
                decompressed = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
            elif self._compression == "bz2":
                decompressed = stack.enter_context(bz2.BZ2File(raw, mode="rb"))
            elif self._compression == "xz":
                decompressed = stack.enter_context(lzma.LZMAFile(raw, mode="rb"))
            else:
                decompressed = raw
                budget.check_ratio = False
            counted = _buffered(_CountingOut(decompressed, budget))
            try:
                yield from self._tar_members(counted, budget)
            except BundleError:
                raise
            except (tarfile.TarError, zlib.error, EOFError, OSError, lzma.LZMAError, ValueError) as exc:
                kind = "gzip-compressed tar" if self._compression == "gzip" else "tar"
                raise BundleError(f"{self.path.name}: corrupt or truncated {kind} archive ({_one_line(exc)})") from None

    def _tar_members(self, stream: BinaryIO, budget: _Budget) -> Iterator[Entry]:
        seen: set[str] = set()
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for info in tf:
                budget.count_member()
                if info.isdir():
                    continue
                try:
                    rel = safe_member_path(info.name, max_length=self.limits.max_name_length)
                except MemberError as exc:
                    self.skip(_printable(info.name), f"unsafe name: {exc}")
                    continue
                if info.issym():
                    self.skip(rel, f"symbolic link to {_printable(info.linkname)} (not followed)")
                    continue
                if info.islnk():
                    self.skip(rel, f"hard link to {_printable(info.linkname)} (not followed)")
                    continue
                if not info.isfile():
                    self.skip(rel, "not a regular file (device, FIFO or special member)")
                    continue
                if rel in seen:
                    self.skip(rel, "duplicate member name")
                    continue
                seen.add(rel)
                if info.size > self.limits.max_member_bytes:
                    self.skip(rel, f"larger than {_human(self.limits.max_member_bytes)}")
                    continue
                inner = tf.extractfile(info)
                if inner is None:
                    self.skip(rel, "not a regular file")
                    continue
                with inner:
                    yield Entry(rel, info.size, _buffered(_MemberStream(inner, path=rel, limits=self.limits)))


def open_bundle(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> BundleSource:
    """Tell what ``path`` is and return a ``BundleSource`` to iterate; ``BundleError`` if unusable."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise BundleError(f"no such file or directory: {p}") from None
    except OSError as exc:
        raise BundleError(f"cannot read {p}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        return BundleSource(p, "directory", limits)
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(f"{p} is neither a directory nor a regular file")
    try:
        with p.open("rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise BundleError(f"cannot read {p}: {exc.strerror or exc}") from None
    fmt = sniff_format(head)
    if fmt == "zip":
        return BundleSource(p, "zip", limits)
    if fmt == "gzip" and not _gzip_holds_tar(p):
        return BundleSource(p, "file", limits, _compression="gzip")
    if fmt in ("gzip", "bz2", "xz", "tar"):
        return BundleSource(p, "tar", limits, _compression=fmt)
    if looks_like_archive_name(p.name):
        if p.name.lower().endswith(".zip") and zipfile.is_zipfile(p):
            return BundleSource(p, "zip", limits)  # a zip with a prefix (self-extracting)
        if not head:
            raise BundleError(f"{p.name} is empty")
        raise BundleError(f"{p.name} is not a zip or tar archive (its first bytes match no archive format)")
    return BundleSource(p, "file", limits)


def _gzip_holds_tar(path: Path) -> bool:
    """Whether a gzip file starts with a tar header (checksum-valid); a corrupt one counts as a tar to report."""
    try:
        with gzip.open(path, "rb") as fh:
            head = fh.read(512)
    except (OSError, EOFError, zlib.error):
        return True
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


# -- small helpers ---------------------------------------------------------------


def _rel(root: Path, full: Path) -> str:
    try:
        return full.relative_to(root).as_posix()
    except ValueError:
        return full.as_posix()


def _printable(name: str) -> str:
    """A hostile name made safe to print on one line."""
    cleaned = "".join(c if 32 <= ord(c) < 127 or ord(c) > 159 else "?" for c in name)
    return cleaned[:200] + ("..." if len(cleaned) > 200 else "")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _human(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
