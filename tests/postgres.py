"""A throwaway PostgreSQL cluster for tests where PostgreSQL behaves unlike SQLite
(e.g. it refuses a NUL character in text).

``initdb`` in a temporary directory, ``pg_ctl`` to start and stop it, trust
authentication on 127.0.0.1 only; everything is deleted afterwards. As root (the
test machines), the cluster runs as the ``postgres`` user, since PostgreSQL refuses
to run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dashboard.server.embedded import free_port, wait_for_port


def bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are, or None when PostgreSQL is not installed."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


@dataclass
class Postgres:
    bin: Path
    data: Path
    port: int
    user: str | None  # the OS user the server runs as (None: the current one)

    @property
    def url(self) -> str:
        return f"postgres://wnd@127.0.0.1:{self.port}/wnd"

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data / "db"), "-o", options, "-l", str(self.data / "log"), "-w", "start")
        wait_for_port(self.port)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data / "db"), "-m", mode, "-w", "stop")


@contextmanager
def throwaway_postgres() -> Iterator[Postgres]:
    """A started cluster with a database ``wnd`` owned by the superuser ``wnd``; removed afterwards."""
    binaries = bin_dir()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    data = Path(tempfile.mkdtemp(prefix="wnd-pg-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    server = Postgres(binaries, data, free_port(), user)
    try:
        server._run("initdb", "-D", str(data / "db"), "-U", "wnd", "-A", "trust", "-E", "UTF8", "--no-sync")
        server.start()
        subprocess.run(
            [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "wnd", "wnd"],
            check=True,
        )
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            server.stop("immediate")
        shutil.rmtree(data, ignore_errors=True)
