"""A PostgreSQL cluster of a test's own, so the test can stop and start the server for real
without touching the shared one other tests (and other processes) use.

Made with the machine's own PostgreSQL binaries (``initdb`` + ``pg_ctl``) in a temporary
directory, listening on a free loopback port, with trust authentication and no fsync (the test
restarts the server cleanly; it never needs what survives a crash of the machine). PostgreSQL
refuses to run as root, so as root the commands run as the ``postgres`` user.
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import free_port


def _bindir() -> Path | None:
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(os.path.realpath(pg_ctl)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def unavailable_reason() -> str | None:
    """Why a private cluster cannot be made on this machine, or None if it can."""
    if _bindir() is None:
        return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root with no postgres user to run the server as"
        if not shutil.which("runuser"):
            return "running as root without runuser to run the server as postgres"
    return None


needs_private_cluster = pytest.mark.skipif(
    unavailable_reason() is not None, reason=str(unavailable_reason())
)


class PrivateCluster:
    def __init__(self, server_settings: dict[str, str] | None = None) -> None:
        """``server_settings``: PostgreSQL settings given to the server (``-c name=value``)."""
        self.server_settings = server_settings or {}
        self.bindir = _bindir()
        self.port = free_port()
        self.datadir = Path(tempfile.mkdtemp(prefix="lowrouter-pg-"))
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.datadir, user.pw_uid, user.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stderr[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create(self) -> "PrivateCluster":
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.server_settings.items())
        log = str(self.datadir / "server.log")
        self._run("pg_ctl", "-D", str(self.datadir), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: in-flight transactions are rolled back and every client is told so
        (FATAL 57P01) before its connection closes, as in an operator's restart."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        admin = self.url().replace("postgres://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def files_containing(self, needle: bytes) -> list[str]:
        """Every file of the cluster (tables, indexes, WAL, the server's log) holding
        ``needle``: the last word on whether a text was ever written to the database."""
        hits = []
        for path in self.datadir.rglob("*"):
            if path.is_file():
                with contextlib.suppress(OSError):
                    if needle in path.read_bytes():
                        hits.append(str(path.relative_to(self.datadir)))
        return hits

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)


@contextlib.contextmanager
def private_cluster(server_settings: dict[str, str] | None = None) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(server_settings)
    try:
        yield cluster.create()
    finally:
        cluster.destroy()
