"""Container images known to the runtime: ``crictl images`` (table or ``-o json``) and ``docker images``."""

from __future__ import annotations

import json
import re

from diagnostics.facts import Image
from diagnostics.parsers.powershell import split_table_and_json, to_text

# Header cells are separated by two or more spaces (tabwriter padding); "IMAGE ID" holds one.
_HEADER_CELL = re.compile(r"\S+(?: \S+)*")


def parse_images(text: str | bytes) -> tuple[Image, ...]:
    """Images from ``crictl images [-o json]`` or ``docker images``; ``<none>`` tags become empty."""
    text = to_text(text)
    if not text.strip():
        return ()
    _before, body = split_table_and_json(text)
    if body.strip():
        return _json_images(body)
    return _table_images(text)


def _json_images(body: str) -> tuple[Image, ...]:
    try:
        data = json.JSONDecoder().raw_decode(body.lstrip())[0]
    except (json.JSONDecodeError, RecursionError):
        raise ValueError("cannot read images: the JSON is not complete") from None
    items = data.get("images") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError("cannot read images: expected {'images': [...]} as 'crictl images -o json' prints")
    images: list[Image] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        image_id = str(item.get("id") or item.get("ID") or "")
        size = str(item.get("size") or item.get("Size") or "")
        tags = [t for t in item.get("repoTags") or [] if isinstance(t, str)]
        if not tags:
            digests = [d for d in item.get("repoDigests") or [] if isinstance(d, str)]
            tags = [d.split("@", 1)[0] for d in digests[:1]]
        for tag in tags:
            repo, _, version = _split_ref(tag)
            images.append(Image(repository=repo, tag=version, id=image_id, size=size))
    return tuple(images)


def _split_ref(ref: str) -> tuple[str, str, str]:
    # The tag follows the last ':' after the last '/', so registry ports stay in the repository.
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ":", ref[colon + 1 :]
    return ref, "", ""


def _table_images(text: str) -> tuple[Image, ...]:
    lines = text.split("\n")
    for i, line in enumerate(lines):
        upper = line.upper()
        if (upper.startswith("IMAGE ") or upper.startswith("REPOSITORY ")) and "TAG" in upper:
            header = line
            body = [row for row in lines[i + 1 :] if row.strip()]
            break
    else:
        raise ValueError(
            "cannot read images: expected a 'crictl images' or 'docker images' table (IMAGE/REPOSITORY, TAG)"
        )
    cols = [(m.group(0).upper(), m.start()) for m in _HEADER_CELL.finditer(header)]
    images = []
    for row in body:
        cells = {}
        for k, (name, start) in enumerate(cols):
            stop = cols[k + 1][1] if k + 1 < len(cols) else len(row)
            cells[name] = row[start:stop].strip()
        repo = cells.get("IMAGE") or cells.get("REPOSITORY") or ""
        if not repo or " " in repo:
            continue  # a line that is not a row (an error message after the table)
        tag = cells.get("TAG", "")
        images.append(
            Image(
                repository=repo,
                tag="" if tag == "<none>" else tag,
                id=cells.get("IMAGE ID", ""),
                size=cells.get("SIZE", ""),
            )
        )
    return tuple(images)
