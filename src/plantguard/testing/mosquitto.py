"""A throwaway Mosquitto broker on 127.0.0.1 for tests and benchmarks, plus its pytest fixtures.

    with MosquittoBroker() as broker:      # finds (or, as root, installs) mosquitto; free port; temp dir
        ... broker.host, broker.port ...
        broker.restart()                   # graceful: the persistence file keeps sessions and queued messages
        broker.kill()                      # SIGKILL, for crash tests; start() brings it back

Fixtures: ``mosquitto`` (a fresh broker per test, ~50 ms to start) and ``mosquitto_session`` (one per run, for
tests that never restart it). Tests using either carry the ``mqtt`` marker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

PACKAGE = "mosquitto"
_install_lock = threading.Lock()
_install_tried = False


class MosquittoUnavailable(RuntimeError):
    """The mosquitto binary is missing and could not be installed."""


def find_mosquitto(install: bool = True) -> str:
    """Path of the mosquitto binary. As root, installs the Debian package once if it is missing."""
    global _install_tried
    exe = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)
    if exe:
        return exe
    with _install_lock:
        if install and not _install_tried and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
            _install_tried = True
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE]):
                subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=600)
            exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
            if exe:
                return exe
    raise MosquittoUnavailable(f"mosquitto broker not found: install the '{PACKAGE}' package (apt-get install {PACKAGE}) or put mosquitto on PATH")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class MosquittoBroker:
    """One mosquitto process with its own config, persistence file and log in a temporary directory."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, workdir: str | Path | None = None,
                 max_inflight: int = 1000, max_queued: int = 0, start_timeout: float = 10.0,
                 extra_conf: list[str] | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._own_dir = workdir is None
        self.dir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="plantguard-mosquitto-"))
        self.max_inflight = max_inflight
        self.max_queued = max_queued  # 0 = no limit: a persistent session keeps everything published while offline
        self.start_timeout = start_timeout
        # e.g. ["allow_anonymous false", "password_file ...", "acl_file ..."]: later lines win over the defaults
        self.extra_conf = list(extra_conf or [])
        self.exe = find_mosquitto()
        self.proc: subprocess.Popen | None = None
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"

    # -- configuration --------------------------------------------------------------------------------------
    def _write_conf(self) -> None:
        (self.dir / "db").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "\n".join([
                f"listener {self.port} {self.host}",
                *(["allow_anonymous true"] if not any(x.startswith("allow_anonymous") for x in self.extra_conf) else []),
                *self.extra_conf,
                f"pid_file {self.dir / 'mosquitto.pid'}",
                # as root mosquitto would switch to user 'mosquitto', which cannot write into our temp dir
                *(["user root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
                "persistence true",
                f"persistence_location {self.dir / 'db'}/",
                "persistence_file mosquitto.db",
                "autosave_interval 60",
                f"max_inflight_messages {self.max_inflight}",
                f"max_queued_messages {self.max_queued}",
                "max_keepalive 65535",
                f"log_dest file {self.log}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "",
            ])
        )

    # -- lifecycle ------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "MosquittoBroker":
        if self.running:
            return self
        self._write_conf()
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() or b"").decode(errors="replace").strip() if self.proc.stderr else ""
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:] if self.log.exists() else []
                self.proc = None
                raise MosquittoUnavailable(f"mosquitto exited at start on port {self.port}: {err or ' | '.join(tail) or 'no output'}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise MosquittoUnavailable(f"mosquitto did not accept connections on {self.host}:{self.port} within {self.start_timeout:g} s")
            time.sleep(0.02)

    @property
    def pid_file(self) -> Path:
        return self.dir / "mosquitto.pid"

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: mosquitto writes its persistence file on SIGTERM."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_pipes()

    def kill(self) -> None:
        """SIGKILL: whatever was not yet autosaved is lost, like a broker crash."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> "MosquittoBroker":
        """Same port, same persistence file: persistent sessions and their queued messages survive."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "MosquittoBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MosquittoBroker({self.host}:{self.port}, {'running' if self.running else 'stopped'})"


def _broker_or_fail(**kw) -> MosquittoBroker:
    try:
        return MosquittoBroker(**kw).start()
    except MosquittoUnavailable as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def mosquitto(tmp_path_factory):
    """A fresh broker for one test (tests may restart or kill it)."""
    broker = _broker_or_fail(workdir=tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def mosquitto_session(tmp_path_factory):
    """One broker for the whole run; tests must not stop it and should use their own topics and client ids."""
    broker = _broker_or_fail(workdir=tmp_path_factory.mktemp("mosquitto-session"))
    try:
        yield broker
    finally:
        broker.close()
