"""Template filters of the dashboard."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """'just now', '3 minutes ago', or 'never'."""
    if value is None:
        return "never"
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value).split(',')[0]} ago"


@register.filter
def bundle_stage(bundle_id: int) -> str:
    """What a running bundle build is waiting for ("asking win-a for fresh logs…"), or ""."""
    from dashboard.bundles import stage_of

    return stage_of(bundle_id)
