"""A throwaway PostgreSQL cluster of its own (tests and `ctid bench reports`), from the Debian binaries."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from itertools import count
from pathlib import Path

from sqlalchemy import create_engine, text

NO_POSTGRES = (
    "needs the PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb and pg_ctl): "
    "`make debs` installs the Debian package postgresql"
)


class PostgresServer:
    """A PostgreSQL cluster of its own: trust auth, its socket in its data directory, a free TCP port.

    As root the server runs as the `postgres` user, since PostgreSQL refuses to run as root.
    """

    def __init__(
        self, bindir: Path, root: Path, port: int, owner: str | None, *, fsync: bool = False
    ) -> None:
        self.fsync = fsync
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = port
        self._as_owner = ["runuser", "-u", owner, "--"] if owner else []
        self._databases = count(1)

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self._as_owner, str(self.bindir / program), *args], check=True, capture_output=True)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "ctid", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        # fsync off for tests: a test cluster never needs to survive a machine crash, and commits are cheap
        fsync = "on" if self.fsync else "off"
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync={fsync}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://ctid@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"test_{next(self._databases)}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
        engine.dispose()
        return self.url(name)


def postgres_bindir() -> Path | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if not found:
        return None
    newest = max(found, key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    return Path(newest).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries, or root without a `postgres` user to run them as."""


@contextlib.contextmanager
def throwaway_postgres(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """A running cluster in a temporary directory, removed afterwards."""
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        raise PostgresUnavailable(NO_POSTGRES)
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "PostgreSQL refuses to run as root and there is no `postgres` user to run it as"
            ) from None
    root = Path(tempfile.mkdtemp(prefix="ctid-pg-"))  # not under a private tmp: the owner must reach it
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(bindir, root, free_port(), owner.pw_name if owner else None, fsync=fsync)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # it never started
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
