"""The Celery application: Redis as broker, configured from Django settings (CELERY_*)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import kombu
from celery import Celery
from celery.app.amqp import AMQP
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")


class BrokerConnection(kombu.Connection):
    """A broker connection that tries again every 1-2 s while the broker is away.

    kombu's default waits 2, 4, 6, ... up to 30 s between attempts, so a worker could
    stay idle for up to 30 s after Redis is back; a connection attempt to a Redis that is
    down costs nothing.
    """

    def ensure_connection(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("interval_start", 1)
        kwargs.setdefault("interval_step", 1)
        kwargs.setdefault("interval_max", 2)
        return super().ensure_connection(*args, **kwargs)


class BrokerAMQP(AMQP):
    Connection = BrokerConnection


app = Celery("dashboard", amqp=BrokerAMQP)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def sweep_when_ready(sender: Any = None, **_kwargs: Any) -> None:
    """A worker that starts (after a crash, too) first queues every diagnosis still owed."""
    from dashboard import tasks

    with contextlib.suppress(Exception):  # the broker went away again: the maintenance task sweeps later
        tasks.sweep_delivery.delay(everything=True)
