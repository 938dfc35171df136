"""A real PostgreSQL server for the deployment tests: the machine's binaries, a throwaway cluster.

:func:`running_postgres` runs ``initdb`` into a fresh directory and starts
``postgres`` on a free loopback port with password (scram) authentication,
then stops it and deletes the directory. PostgreSQL refuses to run as root,
so under root the server runs as the ``postgres`` user that Debian's package
creates. ``make test`` installs that package when the binaries are missing;
without them :func:`server_binaries` fails with one line saying what to do.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

try:
    import psycopg2  # from dagster-postgres (extra `cluster`)
except ImportError:  # reported as one line by running_postgres
    psycopg2 = None

PG_ROOT = Path("/usr/lib/postgresql")  # Debian: /usr/lib/postgresql/<major>/bin
INSTALL_HINT = "run 'make test' (it installs Debian's postgresql) or 'apt-get install -y postgresql'"
SERVER_USER = "postgres"  # who runs the server when the tests run as root
START_TIMEOUT = 30.0


class PostgresUnavailable(RuntimeError):
    """The server binaries or the user to run them as are missing; the message says what to do."""


def server_binaries() -> Path:
    """The ``bin`` folder of the newest installed PostgreSQL server (``initdb`` and ``postgres``)."""
    found = [p.parent for p in PG_ROOT.glob("*/bin/postgres") if (p.parent / "initdb").exists()]
    found.sort(key=lambda b: [int(x) for x in re.findall(r"\d+", b.parent.name)] or [0])
    if found:
        return found[-1]
    initdb = shutil.which("initdb")  # other distributions put the server on PATH
    if initdb and shutil.which("postgres"):
        return Path(initdb).parent
    raise PostgresUnavailable(f"the PostgreSQL server is not installed ({PG_ROOT}/*/bin/postgres): {INSTALL_HINT}")


def _run_as() -> tuple[int, int] | None:
    """The (uid, gid) to run the server as under root; None when the tests are not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as: "
                                  f"{INSTALL_HINT}") from None
    return entry.pw_uid, entry.pw_gid


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server: where it listens and the superuser's credentials."""

    host: str
    port: int
    user: str
    password: str
    directory: Path
    process: subprocess.Popen

    def connect(self, dbname: str = "postgres"):
        """A psycopg2 connection (autocommit) to ``dbname``."""
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=dbname, connect_timeout=5)
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def dagster_env(self, dbname: str) -> dict[str, str]:
        """The variables ``deploy/dagster.yaml`` reads its Postgres settings from."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": self.user,
                "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": dbname}

    def log_tail(self, lines: int = 20) -> str:
        log = self.directory / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def query(conn, sql: str, *params) -> list[tuple]:
    """Rows of ``sql`` (with ``%s`` parameters) on a psycopg2 connection."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _wait_ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise PostgresUnavailable(f"postgres exited ({server.process.returncode}) on start:\n{server.log_tail()}")
        try:
            server.connect().close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"postgres did not accept connections within {START_TIMEOUT:.0f} s:\n"
                                          f"{server.log_tail()}") from None
            time.sleep(0.2)


@contextmanager
def running_postgres(user: str = "metro", password: str = "metro-test-password") -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster on a free loopback port, stopped and deleted afterwards."""
    if psycopg2 is None:
        raise PostgresUnavailable("psycopg2 is not installed: pip install -e '.[cluster]' (make test does)")
    binaries = server_binaries()
    owner = _run_as()
    # not pytest's tmp_path (private to root): under root the server's user must reach its folder, so /tmp
    directory = Path(tempfile.mkdtemp(prefix="metro-pg-", dir="/tmp" if owner else None))
    process = None
    try:
        (directory / "pwfile").write_text(password + "\n")
        if owner:
            for path in (directory, directory / "pwfile"):
                os.chown(path, *owner)
        as_owner = {"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}
        subprocess.run([str(binaries / "initdb"), "-D", str(directory / "data"), "-U", user,
                        f"--pwfile={directory / 'pwfile'}", "--auth-local=trust", "--auth-host=scram-sha-256",
                        "--encoding=UTF8", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True, text=True, **as_owner)
        port = free_port()
        with open(directory / "server.log", "wb") as log:
            if owner:
                os.chown(directory / "server.log", *owner)
            # fsync off: a throwaway test cluster need not survive a power cut, and it saves seconds
            process = subprocess.Popen(
                [str(binaries / "postgres"), "-D", str(directory / "data"), "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={directory}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **as_owner)
        server = PostgresServer("127.0.0.1", port, user, password, directory, process)
        _wait_ready(server)
        yield server
    except subprocess.CalledProcessError as exc:
        raise PostgresUnavailable(f"initdb failed ({exc.returncode}): {exc.stderr.strip()[-500:]}") from None
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
