"""Where finished bundles live: a Django storage that the web process and the workers share.

``WND_BUNDLE_STORAGE`` chooses it (settings ``STORAGES["bundles"]``):

- ``file`` (default): a folder, ``WND_BUNDLE_DIR``. With more than one process host (compose,
  Kubernetes) it must be a volume that web and worker both mount (ReadWriteMany).
- ``s3``, ``azure``, ``gcs``: object storage through django-storages; its options (bucket or
  container, credentials, endpoint) come from ``WND_BUNDLE_STORAGE_OPTIONS``, a JSON object
  (or ``WND_BUNDLE_STORAGE_OPTIONS_FILE``). The cloud SDK is an optional install
  (requirements-s3.txt, requirements-azure.txt, requirements-gcs.txt).
- a dotted path to any other ``Storage`` class.

Builds are written to a local temporary file first and saved to the storage when complete, so a
reader never sees a partial bundle. Downloads stream from the storage in ``CHUNK_BYTES`` pieces
(``stream``), never holding a whole bundle in the web process. ``prune`` keeps the storage within
``WND_BUNDLE_MAX_AGE_DAYS`` and ``WND_BUNDLE_MAX_TOTAL_BYTES``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.utils import timezone
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
BACKENDS = {
    "file": "django.core.files.storage.FileSystemStorage",
    "s3": "storages.backends.s3.S3Storage",
    "azure": "storages.backends.azure_storage.AzureStorage",
    "gcs": "storages.backends.gcloud.GoogleCloudStorage",
}


def storage_config(kind: str, options_json: str) -> dict[str, Any]:
    """``STORAGES["bundles"]`` from the two settings; ``ImproperlyConfigured`` says what is wrong."""
    backend = BACKENDS.get(kind or "file", kind)
    if "." not in backend:
        raise ImproperlyConfigured(
            f"WND_BUNDLE_STORAGE={kind!r}: use file, s3, azure, gcs or the dotted path of a Storage class"
        )
    try:
        options = json.loads(options_json) if options_json.strip() else {}
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"WND_BUNDLE_STORAGE_OPTIONS is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise ImproperlyConfigured("WND_BUNDLE_STORAGE_OPTIONS must be a JSON object of storage options")
    return {"BACKEND": backend, "OPTIONS": options}


def storage() -> Storage:
    """The bundle storage of the current settings (one instance per configuration)."""
    config = settings.STORAGES["bundles"]
    return _storage(
        config["BACKEND"], json.dumps(config.get("OPTIONS", {}), sort_keys=True), str(settings.WND_BUNDLE_DIR)
    )


@functools.lru_cache(maxsize=8)
def _storage(backend: str, options_json: str, bundle_dir: str) -> Storage:
    options = json.loads(options_json)
    try:
        cls = import_string(backend)
        if issubclass(cls, FileSystemStorage):
            options.setdefault("location", bundle_dir)
        return cls(**options)
    except (ImportError, ImproperlyConfigured) as exc:  # the cloud SDK of an optional backend is missing
        raise ImproperlyConfigured(f"the bundle storage {backend} cannot be loaded: {exc}") from None


class _LocalFile(File):
    """A finished local file; FileSystemStorage moves it into place instead of copying it."""

    def temporary_file_path(self) -> str:
        return str(self.name)


def save(name: str, local: Path) -> str:
    """Store the finished file ``local`` under ``name``; returns the name the storage chose."""
    with local.open("rb") as fh:
        return storage().save(name, _LocalFile(fh, name=str(local)))


def local_path(name: str) -> Path | None:
    """The file's path when the storage is a local folder and the file is there; otherwise None."""
    store = storage()
    if not isinstance(store, FileSystemStorage) or not name or "/" in name or "\\" in name:
        return None
    path = Path(store.path(name))
    return path if path.is_file() else None


@dataclass
class Opened:
    """An open stored file and its size, for a download."""

    file: IO[bytes]
    size: int


def open_file(name: str) -> Opened | None:
    """Open ``name`` for reading; None when it is not (or no longer) in the storage."""
    if not name or "/" in name or "\\" in name:
        return None
    store = storage()
    try:
        handle = store.open(name, "rb")
        size = store.size(name)
    except (FileNotFoundError, OSError) as exc:
        log.info("bundle file %s cannot be opened: %s", name, exc)
        return None
    return Opened(file=handle, size=size)


def iterate(fh: IO[bytes], chunk: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file's bytes, ``chunk`` at a time; the file is closed at the end (or when abandoned)."""
    try:
        while data := fh.read(chunk):
            yield data
    finally:
        fh.close()


async def aiterate(fh: IO[bytes], chunk: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
    """The same for an ASGI server: each read runs in a thread, one chunk in memory at a time."""
    read = sync_to_async(fh.read, thread_sensitive=False)
    try:
        while data := await read(chunk):
            yield data
    finally:
        await sync_to_async(fh.close, thread_sensitive=False)()


def delete(name: str) -> None:
    if name and "/" not in name and "\\" not in name:
        storage().delete(name)


def prune(now: datetime | None = None) -> dict[str, int]:
    """Delete finished bundles older than ``WND_BUNDLE_MAX_AGE_DAYS``, then the oldest until the rest
    fit in ``WND_BUNDLE_MAX_TOTAL_BYTES``; their rows stay, without a file (the page says it was removed).

    Idempotent and safe to run concurrently: a file already gone counts as deleted. Returns
    how many files went for each reason.
    """
    from dashboard.models import Bundle

    now = now or timezone.now()
    pruned = {"by_age": 0, "by_size": 0}
    stored = Bundle.objects.filter(state=Bundle.DONE).exclude(file_name="")
    cutoff = now - timedelta(days=settings.WND_BUNDLE_MAX_AGE_DAYS)
    for bundle in stored.filter(finished_at__lt=cutoff).only("pk", "file_name"):
        _remove(bundle)
        pruned["by_age"] += 1
    budget = settings.WND_BUNDLE_MAX_TOTAL_BYTES
    total = 0
    for bundle in stored.order_by("-finished_at", "-pk").only("pk", "file_name", "size_bytes"):
        total += bundle.size_bytes
        if total > budget:
            _remove(bundle)
            pruned["by_size"] += 1
    return pruned


def _remove(bundle: Any) -> None:
    from dashboard.models import Bundle

    try:
        delete(bundle.file_name)
    except OSError as exc:
        log.warning("bundle %s: its file %s could not be deleted: %s", bundle.pk, bundle.file_name, exc)
        return
    Bundle.objects.filter(pk=bundle.pk, file_name=bundle.file_name).update(file_name="")
