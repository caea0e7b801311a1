"""Celery tasks: thin wrappers around plain, idempotent functions tested on their own.

Domain code sends them by name (``dashboard.queue``) and never imports this module.
"""

from __future__ import annotations

from celery import shared_task

from dashboard import bundles, delivery, diagnosis, notify, schedules
from dashboard.server import housekeeping


@shared_task(name="dashboard.check_node")
def check_node(node_id: int) -> bool:
    return diagnosis.check_node(node_id)


@shared_task(name="dashboard.run_now")
def run_now(run_id: int) -> None:
    diagnosis.run_now(run_id)


@shared_task(name="dashboard.run_schedule")
def run_schedule(schedule_id: int, trigger: str = "beat") -> None:
    schedules.run_schedule(schedule_id, trigger=trigger)


@shared_task(name="dashboard.deliver_notifications")
def deliver_notifications(delivery_ids: list[int]) -> None:
    notify.deliver_many(delivery_ids)


@shared_task(name="dashboard.maintenance")
def maintenance() -> None:
    housekeeping.run()


@shared_task(name="dashboard.build_bundle")
def build_bundle(bundle_id: int) -> bool:
    return bundles.build(bundle_id)


@shared_task(name="dashboard.sweep_delivery")
def sweep_delivery(everything: bool = False) -> dict[str, int]:
    return delivery.sweep(everything=everything)
