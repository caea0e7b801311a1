"""``manage.py create_token CLUSTER NODE``: enroll a node and print its new agent token once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.models import enroll


class Command(BaseCommand):
    help = "Register a Windows node (and its cluster) if new and print a new agent token for it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("cluster")
        parser.add_argument("node")
        parser.add_argument("--label", default="", help="a note to tell tokens apart")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            _node, raw = enroll(options["cluster"], options["node"], label=options["label"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(raw)
