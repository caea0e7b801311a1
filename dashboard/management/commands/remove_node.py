"""``manage.py remove_node CLUSTER NODE [--yes]``: delete a node with its reports, findings and tokens."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.models import Node
from dashboard.pages.nodepage import remove


class Command(BaseCommand):
    help = "Remove a node: its tokens are revoked, then it is deleted with its reports, findings and history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("cluster")
        parser.add_argument("node")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args: Any, **options: Any) -> None:
        label = f"{options['cluster']}/{options['node']}"
        node = (
            Node.objects.select_related("cluster")
            .filter(cluster__name=options["cluster"], name=options["node"])
            .first()
        )
        if node is None:
            raise CommandError(f"no node {label}", returncode=2)
        if not options["yes"]:
            answer = input(f"Remove {label} with its {node.reports.count()} reports and its findings? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("nothing removed", returncode=1)
        remove(node)
        self.stdout.write(f"removed {label}")
