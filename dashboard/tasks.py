"""Celery tasks: thin wrappers around the plain functions of ``diagnosis``."""

from __future__ import annotations

from celery import shared_task

from dashboard import diagnosis


@shared_task(name="dashboard.diagnose_report")
def diagnose_report(report_id: int) -> bool:
    return diagnosis.diagnose_report(report_id)


@shared_task(name="dashboard.run_now")
def run_now(run_id: int) -> None:
    diagnosis.run_now(run_id)
