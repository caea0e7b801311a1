"""``manage.py bundle CLUSTER/NODE... [--out PATH] [--format tar.gz|zip]``
``[--no-redact] [--redact-ips] [--redact-hosts] [--no-fresh-logs]``.

Writes the diagnostic bundle of one node, or of several in one archive, from what the
dashboard holds (latest report, log tails, open findings, API objects). First asks the
connected agents for fresh full logs (up to ``WND_BUNDLE_LOGS_WAIT`` seconds) unless
``--no-fresh-logs``. Prints the path of the archive; exit status 2 with a one-line error
when a node is unknown.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.bundles import ExportError, export_nodes
from dashboard.models import Node
from diagnostics.bundle.redact import RedactOptions


class Command(BaseCommand):
    help = "Export the diagnostic bundle of one or more nodes (CLUSTER/NODE) as a .tar.gz or .zip."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("nodes", nargs="+", metavar="CLUSTER/NODE")
        parser.add_argument("--out", help="the archive to write, or a folder for it (default: the current folder)")
        parser.add_argument("--format", choices=("tar.gz", "zip"), default="tar.gz")
        parser.add_argument("--no-redact", action="store_true", help="keep secrets (never attach such a bundle)")
        parser.add_argument("--redact-ips", action="store_true", help="map IP and MAC addresses consistently")
        parser.add_argument("--redact-hosts", action="store_true", help="map host and domain names consistently")
        parser.add_argument(
            "--no-fresh-logs",
            action="store_true",
            help="do not ask connected agents for fresh logs: use the dashboard's stored log tails",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        nodes = [self._node(spec) for spec in options["nodes"]]
        redact = RedactOptions(
            secrets=not options["no_redact"], ips=options["redact_ips"], hosts=options["redact_hosts"]
        )
        when = datetime.now(UTC)
        given = Path(options["out"]) if options["out"] else Path.cwd()
        # A folder (the default: here) gets the bundle under its own top folder's name, known once written.
        folder = given if given.is_dir() else given.parent
        partial = folder / f".{when:%Y%m%dT%H%M%SZ}-{os.getpid()}.bundle.partial"
        try:
            with partial.open("wb") as fh:
                summary = export_nodes(
                    nodes,
                    fh,
                    fmt=options["format"],
                    options=redact,
                    now=when,
                    ask_agents=not options["no_fresh_logs"],
                    stage=lambda text: self.stderr.write(text) if text else None,
                )
            out = folder / f"{summary.root}.{options['format']}" if given.is_dir() else given
            partial.replace(out)
        except ExportError as exc:
            partial.unlink(missing_ok=True)
            raise CommandError(str(exc), returncode=2) from None
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CommandError(f"cannot write in {folder}: {exc.strerror or exc}", returncode=2) from None
        counts = ", ".join(f"{rule} x{n}" for rule, n in summary.redactions.items()) or "nothing"
        self.stderr.write(f"{len(summary.members)} files; redacted: {counts}")
        self.stdout.write(str(out))

    @staticmethod
    def _node(spec: str) -> Node:
        cluster, sep, name = spec.partition("/")
        if not sep or not cluster or not name:
            raise CommandError(f"{spec!r}: name a node as CLUSTER/NODE, e.g. prod-eu/win-node-01", returncode=2)
        node = Node.objects.select_related("cluster").filter(cluster__name=cluster, name=name).first()
        if node is None:
            raise CommandError(f"no node {spec!r}: see the fleet page for enrolled nodes", returncode=2)
        return node
