"""The store's own SQL on a real PostgreSQL: the store's tests run again there.

``Store`` writes pages with one ``INSERT … ON CONFLICT … DO UPDATE`` of its own (``store._upsert``),
whose parameters (the JSON ``data``, the time) are prepared differently for each database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import bin_dir, throwaway_postgres

ROOT = Path(__file__).resolve().parents[3]
VENDOR = "import django; django.setup(); from django.db import connection; print(connection.vendor)"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bin_dir() is None, reason="PostgreSQL binaries (initdb, pg_ctl) are not installed"),
]


def test_the_store_tests_pass_on_postgresql(tmp_path: Path) -> None:
    with throwaway_postgres() as postgres:
        env = dict(os.environ, DATABASE_URL=postgres.url, WND_VAR_DIR=str(tmp_path))
        vendor = subprocess.run(
            [sys.executable, "-c", VENDOR],
            env=dict(env, DJANGO_SETTINGS_MODULE="dashboard.settings"), cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        assert vendor.stdout.strip() == "postgresql"
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/dashboard/cluster/test_store.py"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout
