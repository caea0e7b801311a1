"""Shared test setup: a real Redis for the whole run, and named personas.

The test command starts redis-server and sets ``REDIS_URL``; run alone,
``pytest`` starts one itself before Django's settings are read.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

if "REDIS_URL" not in os.environ:
    from django.conf import settings

    from dashboard.celery import app as celery_app
    from dashboard.server.embedded import Supervisor, free_port

    _redis = Supervisor()
    _url = _redis.start_redis(free_port(), Path(tempfile.mkdtemp(prefix="wnd-test-redis-")))
    atexit.register(_redis.stop)
    # Settings were read before this file (pytest-django sets Django up first);
    # everything that uses Redis reads these values lazily, so point them here.
    os.environ["REDIS_URL"] = _url
    settings.REDIS_URL = settings.CELERY_BROKER_URL = _url
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"] = _url
    celery_app.conf.broker_url = _url

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("olivia", password="operator-pass")
    user.groups.add(Group.objects.get_or_create(name="operator")[0])
    return user


@pytest.fixture
def viewer(django_user_model: Any) -> Any:
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("victor", password="viewer-pass")
    user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    return user
