from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Windows Node Doctor"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from dashboard.schedules import ensure_defaults

        # After every migrate (and every test flush): the maintenance task, and a default schedule.
        post_migrate.connect(ensure_defaults, sender=self, dispatch_uid="wnd-schedule-defaults")
