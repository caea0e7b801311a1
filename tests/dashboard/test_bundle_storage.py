"""Bundle storage shared by web and workers: a folder or object storage, streamed downloads, pruning."""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient
from django.utils import timezone

from dashboard import bundles, bundlestore
from dashboard.models import Bundle, Node, enroll

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def bundle_dir(settings: Any, tmp_path: Path) -> Path:
    settings.WND_BUNDLE_DIR = tmp_path / "bundles"
    return settings.WND_BUNDLE_DIR


@pytest.fixture
def in_memory(settings: Any) -> None:
    """Object storage as the code sees it: a Storage that is not a local folder.

    Django's InMemoryStorage stands in for S3/Azure/GCS here (no object store runs on this
    machine); django-storages' backends implement the same Storage interface.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "bundles": bundlestore.storage_config("django.core.files.storage.InMemoryStorage", ""),
    }


@pytest.fixture
def node() -> Node:
    target, _token = enroll("prod-eu", "win-prod-02")
    return target


def stored_bundle(name: str, data: bytes, *, finished_days_ago: float = 0, fmt: str = "tar.gz") -> Bundle:
    """A finished bundle whose file ``data`` was saved to the storage the way a build saves it."""
    folder = Path(bundlestore.storage().location) if hasattr(bundlestore.storage(), "location") else None
    local = (folder.parent if folder else Path("/tmp")) / f"local-{name}"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    saved = bundlestore.save(name, local)
    return Bundle.objects.create(
        state=Bundle.DONE,
        fmt=fmt,
        file_name=saved,
        size_bytes=len(data),
        finished_at=timezone.now() - timedelta(days=finished_days_ago),
    )


def test_a_folder_storage_moves_the_finished_file_into_the_shared_folder(bundle_dir: Path) -> None:
    bundle = stored_bundle("1-win.tar.gz", b"x" * 1000)
    assert bundles.file_path(bundle) == bundle_dir / "1-win.tar.gz"
    assert (bundle_dir / "1-win.tar.gz").read_bytes() == b"x" * 1000


@pytest.mark.usefixtures("in_memory")
def test_object_storage_keeps_nothing_in_the_local_folder_and_still_serves_the_file(bundle_dir: Path) -> None:
    bundle = stored_bundle("2-win.zip", b"PK" + b"y" * 5000, fmt="zip")
    assert bundles.file_path(bundle) is None
    assert not bundle_dir.exists()
    opened = bundles.open_file(bundle)
    assert opened is not None and opened.size == 5002
    assert b"".join(bundlestore.iterate(opened.file, chunk=1000)) == b"PK" + b"y" * 5000


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize("storage", ["file", "object"])
async def test_a_download_under_asgi_streams_from_the_storage_in_chunks_without_a_warning(
    storage: str, operator: Any, settings: Any, tmp_path: Path
) -> None:
    if storage == "object":
        settings.STORAGES = {
            **settings.STORAGES,
            "bundles": bundlestore.storage_config("django.core.files.storage.InMemoryStorage", ""),
        }
    data = bytes(range(256)) * 4096  # 1 MiB: four chunks
    bundle = await sync_to_async(stored_bundle)("3-win-prod-02.tar.gz", data)
    client = AsyncClient()
    await client.aforce_login(operator)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django warns when it must buffer a sync iterator under ASGI
        response = await client.get(f"/bundles/{bundle.pk}/download")
        assert response.status_code == 200
        assert response.is_async
        chunks = [chunk async for chunk in response.streaming_content]
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= bundlestore.CHUNK_BYTES and len(chunks) >= 4
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Type"] == "application/gzip"
    assert response["Content-Disposition"] == 'attachment; filename="win-prod-02.tar.gz"'


def test_a_pruned_bundle_is_no_longer_downloadable(client: Any, operator: Any) -> None:
    bundle = stored_bundle("4-win.tar.gz", b"z" * 10, finished_days_ago=30)
    assert bundlestore.prune() == {"by_age": 1, "by_size": 0}
    client.force_login(operator)
    response = client.get(f"/bundles/{bundle.pk}/download")
    assert response.status_code == 404


def test_pruning_deletes_bundles_past_the_age_limit_then_the_oldest_beyond_the_total(
    settings: Any, bundle_dir: Path
) -> None:
    settings.WND_BUNDLE_MAX_AGE_DAYS = 7
    settings.WND_BUNDLE_MAX_TOTAL_BYTES = 2500
    old = stored_bundle("10-old.tar.gz", b"o" * 100, finished_days_ago=8)
    oldest_recent = stored_bundle("11-a.tar.gz", b"a" * 1000, finished_days_ago=3)
    middle = stored_bundle("12-b.tar.gz", b"b" * 1000, finished_days_ago=2)
    newest = stored_bundle("13-c.tar.gz", b"c" * 1000, finished_days_ago=1)
    assert bundlestore.prune() == {"by_age": 1, "by_size": 1}
    kept = {b.pk for b in Bundle.objects.exclude(file_name="")}
    assert kept == {middle.pk, newest.pk}
    assert sorted(p.name for p in bundle_dir.iterdir()) == ["12-b.tar.gz", "13-c.tar.gz"]
    assert bundles.open_file(Bundle.objects.get(pk=old.pk)) is None
    assert bundles.open_file(Bundle.objects.get(pk=oldest_recent.pk)) is None
    assert bundlestore.prune() == {"by_age": 0, "by_size": 0}  # idempotent


def test_a_bundle_storage_setting_that_names_no_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(ImproperlyConfigured, match="use file, s3, azure, gcs"):
        bundlestore.storage_config("ftp", "")
    with pytest.raises(ImproperlyConfigured, match="must be a JSON object"):
        bundlestore.storage_config("s3", '["bucket"]')
    assert bundlestore.storage_config("s3", '{"bucket_name": "b"}') == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "b"},
    }


def test_an_object_storage_whose_sdk_is_not_installed_says_what_to_install(settings: Any) -> None:
    settings.STORAGES = {**settings.STORAGES, "bundles": bundlestore.storage_config("gcs", '{"bucket_name": "b"}')}
    with pytest.raises(ImproperlyConfigured, match="cannot be loaded"):
        bundlestore.storage()
