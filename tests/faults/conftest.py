from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from tests.faults.harness import FaultStack


@pytest.fixture
def faults(transactional_db: Any) -> Iterator[FaultStack]:
    """A stack of its own Redis, web, worker and beat on the test database (committed data is shared)."""
    stack = FaultStack(database_url=f"sqlite:///{connection.settings_dict['NAME']}")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
