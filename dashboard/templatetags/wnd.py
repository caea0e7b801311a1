"""Template filters of the dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from diagnostics.model import FixStep

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


@register.filter
def stamp(value: datetime | None) -> str:
    """An absolute time with its zone, in the server's time zone: '2026-12-04 17:46:02 UTC'."""
    if value is None:
        return "never"
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


@register.filter
def fix_steps(steps: Any) -> list[dict[str, Any]]:
    """Fix steps as {"text", "commands"}: a stored string is split into its explanation and the
    commands to paste (``FixStep.from_text``); a mapping may carry ``text`` (or ``explanation``)
    and ``commands`` (a list or one string)."""
    out: list[dict[str, Any]] = []
    for step in steps or []:
        if isinstance(step, str):  # findings/v1's one-string form: the explanation, then one command per line
            parsed = FixStep.from_text(step)
            out.append({"text": parsed.text, "commands": list(parsed.commands)})
        elif isinstance(step, dict):
            text = str(step.get("explanation") or step.get("text") or step.get("why") or "")
            commands = step.get("commands", step.get("command", []))
            if isinstance(commands, str):
                commands = [commands]
            out.append({"text": text, "commands": [str(c) for c in commands or [] if c]})
    return out


@register.filter
def seconds_human(value: int | float | None) -> str:
    """'45 s', '8 min', '3 h', '2 days'."""
    if value is None:
        return "—"
    seconds = int(value)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """``mapping[key]`` in a template, or None."""
    return mapping.get(key) if isinstance(mapping, dict) else None
