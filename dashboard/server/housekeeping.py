"""The maintenance task's work, every 30 s: each step is idempotent and safe to run concurrently."""

from __future__ import annotations

import logging

from django.utils import timezone

from dashboard import bundlestore, delivery, lifecycle, notify, schedules, stale

log = logging.getLogger(__name__)


def run() -> dict[str, object]:
    """1. release schedules whose run died; 2. stale agents; 3. silences that ended; 4. due notifications;
    5. owed diagnoses queued again, dead runs and bundle builds recovered (``delivery.sweep``)."""
    now = timezone.now()
    done: dict[str, object] = {
        "interrupted_runs": schedules.recover_all(now),
        "stale_agents": stale.check_stale_agents(now),
        "silences_ended": lifecycle.expire_silences(now),
        "notifications": notify.deliver_due(),
        "delivery": delivery.sweep(now),
    }
    if now.minute == 0 and now.second < 30:  # once an hour is plenty for the log's pruning
        done["deliveries_pruned"] = notify.prune_deliveries()
        done["bundles_pruned"] = bundlestore.prune(now)
    return done
