"""The beat scheduler: django-celery-beat's database scheduler, seeing every change.

Upstream compares each change time with the one it read at its previous check, and its first
check has none to compare with: a schedule created after beat loaded its entries but before that
first check was never run until something else changed. Here the first check that finds a change
time reloads the entries (once, harmlessly, when nothing had changed).
"""

from __future__ import annotations

from django_celery_beat import schedulers


class DatabaseScheduler(schedulers.DatabaseScheduler):
    def schedule_changed(self) -> bool:
        first_check = self._last_timestamp is None
        changed: bool = super().schedule_changed()
        return changed or (first_check and self._last_timestamp is not None)
