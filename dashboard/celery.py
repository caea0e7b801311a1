"""The Celery application: Redis as broker, configured from Django settings (CELERY_*)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

app = Celery("dashboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def sweep_when_ready(sender: Any = None, **_kwargs: Any) -> None:
    """A worker that starts (after a crash, too) first queues every diagnosis still owed."""
    from dashboard import tasks

    with contextlib.suppress(Exception):  # the broker went away again: the maintenance task sweeps later
        tasks.sweep_delivery.delay(everything=True)
