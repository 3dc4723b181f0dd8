"""Throwaway PostgreSQL servers for tests and benchmarks, plus the pytest fixtures built on them.

    with PostgresServer() as srv:          # initdb + start on 127.0.0.1:<free port>
        store = PostgresStore(srv.dsn)     # or srv.dsn_for(srv.create_database())

Uses Debian's server binaries (/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so as
root the cluster belongs to the `postgres` system user and every server command runs through `runuser`.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

PACKAGE = "postgresql"
_install_lock = threading.Lock()
_install_tried = False


class PostgresUnavailable(RuntimeError):
    pass


def _version_key(path: str) -> tuple:
    ver = Path(path).parent.parent.name
    return tuple(int(p) if p.isdigit() else 0 for p in ver.split("."))


def find_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def ensure_bindir() -> Path:
    """The server binaries' directory; as root, installs the Debian package once when it is missing."""
    global _install_tried
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    with _install_lock:
        if os.geteuid() == 0 and shutil.which("apt-get") and not _install_tried:
            _install_tried = True
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", PACKAGE], env=env, capture_output=True, check=False)
            bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(f"PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package '{PACKAGE}'")
    return bindir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A private cluster in a temp dir on 127.0.0.1. `settings` are extra server options (name -> value),
    e.g. {"fsync": "off"} for throwaway test clusters; the defaults are PostgreSQL's own."""

    def __init__(self, settings: dict[str, str] | None = None, start_timeout: float = 60.0):
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.tmp: Path | None = None
        self._as_postgres = os.geteuid() == 0

    # -- paths and commands -----------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "data"

    @property
    def sockdir(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "sock"

    @property
    def logfile(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "server.log"

    def _cmd(self, argv: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        # cwd inside our temp dir: the postgres user may not be allowed into the caller's cwd
        return subprocess.run(argv, cwd=self.tmp, capture_output=True, text=True, check=check, timeout=timeout)

    @property
    def dsn(self) -> str:
        """DSN of the cluster's `postgres` database (superuser, trust authentication)."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname} connect_timeout=10"

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> "PostgresServer":
        bindir = ensure_bindir()
        self.tmp = Path(tempfile.mkdtemp(prefix="plantguard-pg-"))
        try:
            if self._as_postgres:
                shutil.chown(self.tmp, "postgres", "postgres")
            self._mkdir(self.sockdir)
            r = self._cmd([str(bindir / "initdb"), "-D", str(self.datadir), "-U", self.user, "--auth=trust",
                           "--encoding=UTF8", "--locale=C", "--no-sync"], check=False)
            if r.returncode != 0:
                raise PostgresUnavailable(f"initdb failed: {(r.stderr or r.stdout).strip()[-2000:]}")
            last = ""
            for _ in range(5):  # the free port can be taken between probing and binding: retry on another one
                self.port = free_port()
                opts = [f"-c listen_addresses={self.host}", f"-p {self.port}", f"-k {self.sockdir}"]
                opts += [f"-c {k}={v}" for k, v in self.settings.items()]
                r = self._cmd([str(bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-o", " ".join(opts),
                               "-w", "-t", str(int(self.start_timeout)), "start"], check=False, timeout=self.start_timeout + 30)
                if r.returncode == 0 and self._ready():
                    self._bindir, self._opts = bindir, opts
                    return self
                last = self._log_tail()
                self._kill_leftovers()
            raise PostgresUnavailable(f"PostgreSQL did not start: {last}")
        except BaseException:
            self._cleanup()
            raise

    def _mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o700)
        if self._as_postgres:
            shutil.chown(path, "postgres", "postgres")

    def _ready(self) -> bool:
        import psycopg

        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.dsn, autocommit=True) as con:
                    con.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        return False

    def _log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace").strip()[-2000:]
        except OSError:
            return "(no server log)"

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _kill_leftovers(self) -> None:
        pid = self._postmaster_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)  # the postmaster we started; its children exit when it is gone
        except ProcessLookupError:
            pass
        except PermissionError:
            subprocess.run(["kill", "-9", str(pid)], capture_output=True, check=False)
        time.sleep(0.2)
        try:
            (self.datadir / "postmaster.pid").unlink()
        except OSError:
            pass

    def pause(self) -> None:
        """Stops the server and keeps its data (a database outage); resume() starts it again on the same port."""
        self._cmd([str(self._bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "-t", "30", "stop"], timeout=60)

    def resume(self) -> None:
        self._cmd([str(self._bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-o", " ".join(self._opts),
                   "-w", "-t", str(int(self.start_timeout)), "start"], timeout=self.start_timeout + 30)

    def stop(self) -> None:
        if self.tmp is None:
            return
        bindir = getattr(self, "_bindir", None)
        if bindir is not None and self._postmaster_pid() is not None:
            r = self._cmd([str(bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "-t", "30", "stop"], check=False, timeout=60)
            if r.returncode != 0:
                self._cmd([str(bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "-t", "10", "stop"], check=False, timeout=30)
        self._kill_leftovers()
        self._cleanup()

    def _cleanup(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- databases --------------------------------------------------------------------------------------
    def create_database(self, name: str | None = None) -> str:
        """Creates an empty database; returns its name."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex}"
        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- pytest fixtures ------------------------------------------------------------------------------------
# A throwaway cluster: crash durability of the OS is not under test, so skip the fsyncs (commits stay
# transactional and survive reconnects and server restarts).
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture(scope="session")
def pg_server():
    try:
        srv = PostgresServer(TEST_SETTINGS).start()
    except PostgresUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def pg_dsn(pg_server):
    """A DSN to a fresh, empty database, dropped after the test."""
    name = pg_server.create_database()
    try:
        yield pg_server.dsn_for(name)
    finally:
        pg_server.drop_database(name)
