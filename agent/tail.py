"""Reading logs incrementally: each report carries only the lines not sent before.

A log's position is its byte offset plus the file's identity. When the file
is replaced (a different identity) or shrank below the offset, it was
rotated: reading restarts at 0 and the tail is marked ``rotated``. Only
complete lines are taken; a line still being written waits for the next
cycle. UTF-16 logs (PowerShell ``>``) are read two bytes at a time, with or
without a byte-order mark (a BOM-less file is recognised by its NULs and
remembered once known). No NUL character reaches the text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from diagnostics.parsers.powershell import looks_like_utf16le, normalize_newlines


@dataclass(frozen=True)
class TailChunk:
    path: str
    offset: int  # byte offset where text starts
    text: str
    rotated: bool
    state: dict[str, Any]  # the position after this chunk, to commit once the report is safely queued


def file_identity(st: os.stat_result) -> str:
    """Device + inode (on Windows the NTFS file index) + creation time where the platform has one."""
    born = getattr(st, "st_birthtime", None)
    if born is None and os.name == "nt":
        born = st.st_ctime  # creation time on Windows
    return f"{st.st_dev}:{st.st_ino}:{born or ''}"


def _encoding(head: bytes, remembered: str | None = None) -> tuple[str, int]:
    """(encoding, BOM length) from the first bytes of the file (up to 400)."""
    if head.startswith(b"\xff\xfe"):
        return "utf-16-le", 2
    if head.startswith(b"\xfe\xff"):
        return "utf-16-be", 2
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8", 3
    if remembered == "utf-16-le" or looks_like_utf16le(head[: len(head) // 2 * 2]):
        return "utf-16-le", 0
    return "utf-8", 0


def read_tail(
    path: str,
    local_path: str,
    previous: dict[str, Any] | None,
    *,
    max_bytes: int,
    initial_bytes: int,
) -> TailChunk | None:
    """The new complete lines of ``local_path`` since ``previous``; ``None`` when the file does not exist.

    1. Identify the file; compare with the remembered identity and offset.
    2. Choose the start: the remembered offset, 0 after a rotation, or the last
       ``initial_bytes`` (from a line start) the first time a log is seen.
    3. Read at most ``max_bytes`` and cut after the last complete line.
    """
    try:
        with open(local_path, "rb") as fh:
            st = os.fstat(fh.fileno())
            ident = file_identity(st)
            size = st.st_size
            head = fh.read(400)
            encoding, bom = _encoding(head, (previous or {}).get("encoding") if previous else None)
            unit = 2 if encoding.startswith("utf-16") else 1
            rotated = False
            if previous is None:
                start = max(bom, size - initial_bytes)
            elif previous.get("id") != ident or size < int(previous.get("offset", 0)):
                rotated, start = True, bom
            else:
                start = max(bom, int(previous.get("offset", 0)))
            start -= (start - bom) % unit
            fh.seek(start)
            data = fh.read(max(0, min(size, start + max_bytes) - start))
    except (FileNotFoundError, NotADirectoryError):
        return None
    skipped = 0
    if previous is None and start > bom:
        # Begin at a line start: drop the partial first line.
        cut = _first_newline(data, encoding)
        skipped = cut if cut >= 0 else len(data)
    end = _last_newline(data, encoding)
    if end < 0 or end < skipped:
        end = len(data) if len(data) >= max_bytes else skipped  # one huge line is sent as is
    body = data[skipped:end]
    text = normalize_newlines(body.decode(encoding, errors="replace")).replace("\x00", "")
    new_offset = start + end
    return TailChunk(
        path=path,
        offset=start + skipped,
        text=text,
        rotated=rotated,
        state={"id": ident, "offset": new_offset, "encoding": encoding},
    )


def _newline(encoding: str) -> bytes:
    return {"utf-16-le": b"\n\x00", "utf-16-be": b"\x00\n"}.get(encoding, b"\n")


def _first_newline(data: bytes, encoding: str) -> int:
    nl = _newline(encoding)
    pos = data.find(nl)
    while pos >= 0 and len(nl) == 2 and pos % 2:
        pos = data.find(nl, pos + 1)
    return pos + len(nl) if pos >= 0 else -1


def _last_newline(data: bytes, encoding: str) -> int:
    nl = _newline(encoding)
    pos = data.rfind(nl)
    while pos >= 0 and len(nl) == 2 and pos % 2:
        pos = data.rfind(nl, 0, pos)
    return pos + len(nl) if pos >= 0 else -1
