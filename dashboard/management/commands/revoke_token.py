"""``manage.py revoke_token CLUSTER NODE [--hint PREFIX]``: revoke a node's agent tokens."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from dashboard import agents
from dashboard.models import AgentToken, Node


class Command(BaseCommand):
    help = "Revoke the active agent tokens of a node (all, or the one whose hint starts with --hint)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("cluster")
        parser.add_argument("node")
        parser.add_argument("--hint", default="", help="the first characters of the token, as the UI shows them")

    def handle(self, *args: Any, **options: Any) -> None:
        tokens = AgentToken.objects.filter(
            node__cluster__name=options["cluster"], node__name=options["node"], revoked_at__isnull=True
        )
        if options["hint"]:
            tokens = tokens.filter(hint__startswith=options["hint"])
        revoked = {pk: node_id for pk, node_id in tokens.values_list("pk", "node_id")}
        count = tokens.update(revoked_at=timezone.now())
        for node in Node.objects.select_related("cluster").filter(pk__in=set(revoked.values())):
            # Their open connections close now, and the pages say "reports refused" now.
            agents.tokens_revoked(node, [pk for pk, node_id in revoked.items() if node_id == node.pk])
        if not count:
            raise CommandError(f"no active token for {options['cluster']}/{options['node']}", returncode=2)
        self.stdout.write(f"revoked {count} token(s)")
