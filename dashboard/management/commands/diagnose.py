"""``manage.py diagnose PATH [-o text|json|markdown] [--node NAME] [--exit-zero]``: diagnose a bundle offline.

A thin wrapper over ``diagnostics.cli``: no database, Redis or cluster is touched. Exit status as
``python -m diagnostics``: 3 for a failing critical finding, 4 for failing warnings only, 2 (one line
on stderr, nothing on stdout) when the input is unusable, 0 otherwise or with ``--exit-zero``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from diagnostics import cli
from diagnostics.bundle import BundleError


class Command(BaseCommand):
    help = "Run every check a diagnostic bundle (directory, .zip or .tar.gz) allows and print the findings."
    # System checks may look at the database; offline analysis must run without one.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        color = not options.get("no_color") and (options.get("force_color") or cli.use_color(self.stdout))
        try:
            output, status = cli.run_command(
                options.get("path"),
                fmt=options["format"],
                node=options.get("node"),
                list_only=options["list_checks"],
                color=bool(color),
            )
        except BundleError as exc:
            raise CommandError(cli.one_line(str(exc)), returncode=cli.EXIT_UNUSABLE) from None
        self.stdout.write(output, ending="")
        if status and not options.get("exit_zero"):
            self.stdout.flush()
            raise SystemExit(status)
