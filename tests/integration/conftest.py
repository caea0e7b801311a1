from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack import Stack, running_stack


@pytest.fixture
def stack(transactional_db: Any) -> Iterator[Stack]:
    """uvicorn and a Celery worker on the test database (committed data is visible to them)."""
    with running_stack() as running:
        yield running
