"""The Diagnose page's analyses run in a limited child process, one at a time per user."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dashboard import live
from dashboard.pages import sandbox
from diagnostics.cli import diagnose
from tests.diagnostics.bundle.builders import FIXTURES, make_targz
from tests.hostile.inputs import objects_bundle, yaml_bundle

MiB = 1024 * 1024


def run(path: Path, limits: sandbox.Limits) -> Any:
    return asyncio.run(sandbox.diagnose_isolated(path, limits))


def test_the_sandbox_finds_what_the_cli_finds(tmp_path: Path) -> None:
    bundle = make_targz(FIXTURES / "exported", tmp_path / "exported.tar.gz")
    isolated = run(bundle, sandbox.Limits(memory_bytes=1024 * MiB, timeout=120))
    direct = diagnose(bundle)
    assert isolated.nodes == direct.nodes
    assert isolated.checks == direct.checks
    assert isolated.document.to_dict() == direct.document.to_dict()


def test_an_input_the_reader_refuses_gives_its_message(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a gzip stream at all")
    with pytest.raises(sandbox.InputError) as caught:
        run(junk, sandbox.Limits(memory_bytes=1024 * MiB, timeout=120))
    assert "junk.tar.gz" in str(caught.value)


def test_an_analysis_needing_more_memory_than_allowed_is_stopped_and_says_so(tmp_path: Path) -> None:
    bundle = objects_bundle(tmp_path / "objects.tar.gz", mb=30)  # about 300 MiB once parsed
    with pytest.raises(sandbox.SandboxError) as caught:
        run(bundle, sandbox.Limits(memory_bytes=160 * MiB, timeout=300))
    assert "more than 160 MiB of memory (WND_DIAGNOSE_MEMORY_MB)" in str(caught.value)


def test_an_analysis_taking_longer_than_allowed_is_killed_and_says_so(tmp_path: Path) -> None:
    bundle = yaml_bundle(tmp_path / "slow.tar.gz", files=3, file_mb=8)
    with pytest.raises(sandbox.SandboxError) as caught:
        run(bundle, sandbox.Limits(memory_bytes=2048 * MiB, timeout=1))
    assert "took longer than 1 s (WND_DIAGNOSE_TIMEOUT)" in str(caught.value)


@pytest.mark.django_db
def test_a_user_with_an_analysis_running_is_asked_to_wait(client: Any, viewer: Any) -> None:
    client.force_login(viewer)
    key = f"wnd:diagnose-running:{viewer.pk}"
    redis = live.redis_client()
    redis.set(key, 1, ex=60)  # one analysis of this user is running (in another request)
    try:
        response = client.post("/diagnose", {"mode": "paste", "text": "Waiting for the Network to be created"})
        assert response.status_code == 429
        assert "You already have an analysis running" in response.content.decode()
        assert int(redis.get(key) or 0) == 1  # the refused request gave its slot back
    finally:
        redis.delete(key)


@pytest.mark.django_db
def test_the_slot_is_given_back_after_an_analysis(client: Any, viewer: Any) -> None:
    client.force_login(viewer)
    response = client.post("/diagnose", {"mode": "paste", "text": "Waiting for the Network to be created"})
    assert response.status_code in (200, 400)
    assert int(live.redis_client().get(f"wnd:diagnose-running:{viewer.pk}") or 0) == 0


@pytest.mark.django_db
def test_when_everyone_s_slots_are_taken_a_user_is_asked_to_come_back(client: Any, viewer: Any, settings: Any) -> None:
    client.force_login(viewer)
    redis = live.redis_client()
    redis.set("wnd:diagnose-running:all", settings.WND_DIAGNOSE_CONCURRENCY, ex=60)
    try:
        response = client.post("/diagnose", {"mode": "paste", "text": "Waiting for the Network to be created"})
        assert response.status_code == 429
        assert "analyses are already running (WND_DIAGNOSE_CONCURRENCY)" in response.content.decode()
        assert int(redis.get("wnd:diagnose-running:all") or 0) == settings.WND_DIAGNOSE_CONCURRENCY
        assert int(redis.get(f"wnd:diagnose-running:{viewer.pk}") or 0) == 0
    finally:
        redis.delete("wnd:diagnose-running:all")
