"""Charts as server-rendered SVG: no script, no CDN, works air-gapped and in a live update.

Each function computes its series with a few aggregate queries and returns markup (styled by
``app.css`` through classes, so the dark theme applies). Series are computed, never sampled:
the numbers under a bar are the numbers in the database.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from django.db.models import Max, Q
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from dashboard.models import Finding, Node, Report
from dashboard.monitoring import FindingEvent
from diagnostics.model import Severity, Status

SEVERITIES = [s.slug for s in Severity.ordered()]  # worst first
RANK = {s.slug: s.rank for s in Severity}

# A window and its buckets: (bucket length, number of buckets, label format).
WINDOWS: dict[str, tuple[timedelta, int, str]] = {
    "24h": (timedelta(hours=1), 24, "%H:%M"),
    "7d": (timedelta(hours=6), 28, "%a %H:%M"),
    "30d": (timedelta(days=1), 30, "%d %b"),
}

W, H, PAD_L, PAD_B, PAD_T = 600, 220, 34, 22, 8


@dataclass(frozen=True)
class Bucket:
    end: datetime
    label: str


def buckets(window: str, now: datetime | None = None) -> list[Bucket]:
    """The ends of the window's buckets, oldest first; the last one ends now."""
    step, count, fmt = WINDOWS.get(window, WINDOWS["24h"])
    now = now or timezone.now()
    ends = [now - step * (count - 1 - i) for i in range(count)]
    return [Bucket(end, f"{timezone.localtime(end):{fmt}}") for end in ends]


def _axis(max_value: int, height: int) -> tuple[int, list[str]]:
    """A round top for the y axis and its grid lines."""
    top = max(1, max_value)
    for nice in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if nice >= top:
            top = nice
            break
    lines = []
    for frac in (0, 0.5, 1):
        y = PAD_T + height - frac * height
        lines.append(f'<line class="grid" x1="{PAD_L}" x2="{W}" y1="{y:.1f}" y2="{y:.1f}"/>')
        lines.append(f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">{round(top * frac)}</text>')
    return top, lines


def _svg(title: str, body: list[str], height: int = H) -> SafeString:
    # Every value interpolated into ``body`` is a number or escaped text.
    return mark_safe(
        f'<svg viewBox="0 0 {W} {height}" role="img" aria-label="{escape(title)}" preserveAspectRatio="none">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _x_labels(labels: list[str], bar_w: float, every: int) -> list[str]:
    out = []
    for i, label in enumerate(labels):
        if i % every == 0 and len(labels) - i > every / 2:
            x = PAD_L + i * bar_w + bar_w / 2
            out.append(f'<text x="{x:.1f}" y="{H - 6}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{W}" y="{H - 6}" text-anchor="end">{escape(labels[-1])}</text>' if labels else "")
    return out


def stacked_bars(title: str, labels: list[str], series: list[dict[str, int]], keys: list[str]) -> SafeString:
    """One bar per bucket, stacked by ``keys`` (class ``s-<key>``), each part with its count as a tooltip."""
    inner = H - PAD_B - PAD_T
    top, body = _axis(max((sum(s.get(k, 0) for k in keys) for s in series), default=0), inner)
    bar_w = (W - PAD_L) / max(1, len(series))
    for i, values in enumerate(series):
        y = float(PAD_T + inner)
        for key in reversed(keys):  # the worst on top
            n = values.get(key, 0)
            if not n:
                continue
            h = inner * n / top
            y -= h
            x = PAD_L + i * bar_w + 1
            tip = f"{labels[i]}: {n} {key}"
            body.append(
                f'<rect class="s-{key}" x="{x:.1f}" y="{y:.1f}" width="{max(1.0, bar_w - 2):.1f}" height="{h:.1f}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    body += _x_labels(labels, bar_w, max(1, len(labels) // 6))
    return _svg(title, body)


def paired_bars(title: str, labels: list[str], pairs: list[tuple[int, int]], names: tuple[str, str]) -> SafeString:
    """Two bars per bucket side by side (class ``opened`` and ``resolved``)."""
    inner = H - PAD_B - PAD_T
    top, body = _axis(max((max(a, b) for a, b in pairs), default=0), inner)
    group_w = (W - PAD_L) / max(1, len(pairs))
    bar_w = max(1.0, group_w / 2 - 2)
    for i, values in enumerate(pairs):
        for j, n in enumerate(values):
            if not n:
                continue
            h = inner * n / top
            x = PAD_L + i * group_w + 1 + j * (bar_w + 1)
            tip = f"{labels[i]}: {n} {names[j]}"
            y = PAD_T + inner - h
            body.append(
                f'<rect class="{names[j]}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    body += _x_labels(labels, group_w, max(1, len(labels) // 7))
    return _svg(title, body)


# -- History ------------------------------------------------------------------------------------


def open_by_severity(window: str, *, cluster: str = "", now: datetime | None = None) -> dict[str, Any]:
    """Open failing findings by severity at the end of each bucket of the window."""
    now = now or timezone.now()
    marks = buckets(window, now)
    start = marks[0].end - WINDOWS.get(window, WINDOWS["24h"])[0]
    rows = Finding.objects.filter(status=Status.FAIL.slug, first_seen__lte=now).filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gt=start)
    )
    if cluster:
        rows = rows.filter(node__cluster__name=cluster)
    intervals = list(rows.values_list("first_seen", "resolved_at", "severity"))
    series: list[dict[str, int]] = []
    for mark in marks:
        counts: dict[str, int] = defaultdict(int)
        for opened, resolved, severity in intervals:
            if opened <= mark.end and (resolved is None or resolved > mark.end):
                counts[severity] += 1
        series.append(dict(counts))
    labels = [m.label for m in marks]
    return {
        "svg": stacked_bars("Open findings by severity", labels, series, SEVERITIES),
        "now": series[-1] if series else {},
    }


def opened_resolved(window: str, *, cluster: str = "", now: datetime | None = None) -> SafeString:
    """Findings opened (or back) and resolved per bucket of the window."""
    now = now or timezone.now()
    marks = buckets(window, now)
    step = WINDOWS.get(window, WINDOWS["24h"])[0]
    events = FindingEvent.objects.filter(at__gt=marks[0].end - step, kind__in=FindingEvent.TRANSITIONS)
    if cluster:
        events = events.filter(node__cluster__name=cluster)
    pairs = [[0, 0] for _ in marks]
    for at, kind in events.values_list("at", "kind"):
        index = min(len(marks) - 1, max(0, len(marks) - 1 - int((now - at) / step)))
        pairs[index][1 if kind == FindingEvent.RESOLVED else 0] += 1
    return paired_bars(
        "Opened and resolved", [m.label for m in marks], [(a, b) for a, b in pairs], ("opened", "resolved")
    )


def time_to_resolve(window: str, *, cluster: str = "", limit: int = 12) -> list[dict[str, Any]]:
    """Median time from first seen to resolved, per check, for findings resolved in the window."""
    since = timezone.now() - WINDOWS.get(window, WINDOWS["24h"])[0] * WINDOWS.get(window, WINDOWS["24h"])[1]
    rows = Finding.objects.filter(resolved_at__gte=since, status=Status.FAIL.slug)
    if cluster:
        rows = rows.filter(node__cluster__name=cluster)
    per: dict[str, list[float]] = defaultdict(list)
    for check_id, first, resolved in rows.values_list("check_id", "first_seen", "resolved_at"):
        if resolved is None:
            continue
        per[check_id].append(max(0.0, (resolved - first).total_seconds()))
    ranked = sorted(((median(v), len(v), k) for k, v in per.items()), reverse=True)[:limit]
    longest = ranked[0][0] if ranked else 1.0
    return [
        {"check_id": k, "seconds": s, "count": n, "percent": max(2, round(100 * s / longest)) if longest else 2}
        for s, n, k in ranked
    ]


# -- Node ---------------------------------------------------------------------------------------


def node_timeline(node: Node, *, hours: int = 24, now: datetime | None = None) -> SafeString:
    """A band of the node's health per hour (its worst open finding) over a line of its report age."""
    now = now or timezone.now()
    start = now - timedelta(hours=hours)
    rows = node.findings.filter(status=Status.FAIL.slug, first_seen__lte=now).filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gt=start)
    )
    intervals = list(rows.values_list("first_seen", "resolved_at", "severity"))
    last_by_hour = dict(
        Report.objects.filter(node=node, received_at__gt=start - timedelta(hours=1))
        .annotate(hour=TruncHour("received_at"))
        .values("hour")
        .annotate(last=Max("received_at"))
        .values_list("hour", "last")
    )
    earlier = Report.objects.filter(node=node, received_at__lte=start).order_by("-received_at")
    before = earlier.values_list("received_at", flat=True).first()
    known_since = node.created_at  # before the node was known there is nothing to say
    height, band_h = 120, 22
    inner = height - PAD_B - PAD_T - band_h - 6
    slot = (W - PAD_L) / hours
    body: list[str] = []
    ages: list[float | None] = []
    last_seen = before
    for i in range(hours):
        end = start + timedelta(hours=i + 1)
        open_now = [
            sev for opened, resolved, sev in intervals if opened <= end and (resolved is None or resolved > end)
        ]
        worst = max(open_now, key=lambda sev: RANK.get(sev, 0), default=None)
        if end < known_since or (last_seen is None and node.last_report_at is None and not node.in_api):
            css, label = "s-unknown", "no data"
        else:
            css, label = (f"s-{worst}", worst) if worst else ("s-ok", "healthy")
        x = PAD_L + i * slot
        tip = f"{timezone.localtime(end):%H:%M}: {label}"
        body.append(
            f'<rect class="{css}" x="{x + 0.5:.1f}" y="{PAD_T}" width="{max(1.0, slot - 1):.1f}" height="{band_h}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        for hour, seen in last_by_hour.items():
            if end - timedelta(hours=1) < hour <= end and (last_seen is None or seen > last_seen):
                last_seen = seen
        ages.append(max(0.0, (end - last_seen).total_seconds() / 60) if last_seen else None)
    top_age = max([a for a in ages if a is not None] or [1.0])
    top_age = max(top_age, 5.0)
    base = PAD_T + band_h + 6 + inner
    points = []
    for i, age in enumerate(ages):
        if age is None:
            continue
        x = PAD_L + i * slot + slot / 2
        y = base - inner * min(age, top_age) / top_age
        points.append(f"{x:.1f},{y:.1f}")
    body.append(f'<line class="grid" x1="{PAD_L}" x2="{W}" y1="{base}" y2="{base}"/>')
    body.append(f'<text x="{PAD_L - 4}" y="{base + 4}" text-anchor="end">0</text>')
    body.append(f'<text x="{PAD_L - 4}" y="{base - inner + 4}" text-anchor="end">{round(top_age)}m</text>')
    body.append(f'<text x="{PAD_L - 4}" y="{PAD_T + 15}" text-anchor="end">health</text>')
    if points:
        line = " ".join(points)
        body.append(f'<polyline class="line" points="{line}"><title>report age, minutes</title></polyline>')
    for i in range(0, hours, 6):
        x = PAD_L + i * slot
        label = f"{timezone.localtime(start + timedelta(hours=i)):%H:%M}"
        body.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="start">{label}</text>')
    return _svg("Health per hour and report age (minutes), last 24 hours", body, height)
