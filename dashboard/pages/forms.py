"""Forms of the Schedules and Notifications pages: validation with messages that say what to fix."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.core.validators import validate_email

from dashboard.monitoring import NotificationChannel, Schedule
from dashboard.schedules import resolve_checks, validate_cron
from dashboard.selectors import SelectorError, parse_selector

MIN_INTERVAL = 10  # seconds: shorter runs would only queue behind each other


class ScheduleForm(forms.ModelForm):
    TIMING = [("interval", "Every … seconds"), ("cron", "Cron expression (UTC)")]

    timing = forms.ChoiceField(choices=TIMING, initial="interval")

    class Meta:
        model = Schedule
        fields = ["name", "enabled", "nodes", "label_selector", "node_names", "checks", "interval_seconds", "cron"]
        widgets = {"node_names": forms.Textarea(attrs={"rows": 3}), "checks": forms.TextInput()}
        help_texts = {
            "label_selector": "e.g. kubernetes.io/os=windows,node.kubernetes.io/windows-build=10.0.20348",
            "node_names": "One per line: node or cluster/node.",
            "checks": "Check ids or areas separated by spaces (flannel hns.network-missing); empty for all.",
            "cron": "minute hour day-of-month month day-of-week, e.g. */30 * * * *",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.cron:
            self.initial["timing"] = "cron"

    def clean_label_selector(self) -> str:
        text = self.cleaned_data.get("label_selector", "").strip()
        try:
            parse_selector(text)
        except SelectorError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text

    def clean_checks(self) -> str:
        tokens = self.cleaned_data.get("checks", "").replace(",", " ").split()
        try:
            resolve_checks(tokens)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return " ".join(tokens)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        mode = data.get("nodes")
        if mode == Schedule.NODES_SELECTOR and not data.get("label_selector"):
            self.add_error("label_selector", "Give a label selector, or choose another way to pick nodes.")
        if mode == Schedule.NODES_NAMES and not data.get("node_names", "").split():
            self.add_error("node_names", "Name at least one node, or choose another way to pick nodes.")
        if data.get("timing") == "cron":
            data["interval_seconds"] = None
            try:
                data["cron"] = " ".join(validate_cron(data.get("cron", "")))
            except ValueError as exc:
                self.add_error("cron", str(exc))
        else:
            data["cron"] = ""
            seconds = data.get("interval_seconds")
            if not seconds or seconds < MIN_INTERVAL:
                self.add_error("interval_seconds", f"Give an interval of at least {MIN_INTERVAL} seconds.")
        return data


class ChannelForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "target", "min_severity", "enabled"]
        labels = {"target": "URL or email addresses", "min_severity": "Notify from severity"}
        help_texts = {"target": "The webhook URL, or email addresses separated by commas."}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        target = data.get("target", "").strip()
        if data.get("kind") == NotificationChannel.EMAIL:
            addresses = [a.strip() for a in target.split(",") if a.strip()]
            if not addresses:
                self.add_error("target", "Give at least one email address.")
            for address in addresses:
                try:
                    validate_email(address)
                except forms.ValidationError:
                    self.add_error("target", f"{address!r} is not an email address.")
            data["target"] = ", ".join(addresses)
        elif target:
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.add_error("target", "A webhook needs an http:// or https:// URL.")
            data["target"] = target
        return data


class AcknowledgeForm(forms.Form):
    note = forms.CharField(max_length=2000, required=False, widget=forms.TextInput())


class SilenceForm(forms.Form):
    DURATIONS = [("1", "1 hour"), ("4", "4 hours"), ("24", "1 day"), ("168", "1 week")]

    hours = forms.TypedChoiceField(choices=DURATIONS, coerce=int, initial="4")
    note = forms.CharField(max_length=2000, required=False, widget=forms.TextInput())
