"""Broker-side signals: what Mosquitto's own log says about refused clients, read as it is written.

    security:
      broker:
        log_file: /var/log/mosquitto/mosquitto.log   # mosquitto.conf: log_dest file ..., log_type notice
                                                     # (and log_type debug for ACL denials)

Two rules, raised as security events like the behavioural ones (same dedupe, triage and quarantine policy):

    access.broker_auth_failures  `auth_failures` refused connections (wrong or unknown credentials, a client
                                 certificate that does not verify) within `auth_window_s`; the event names the
                                 addresses and is raised on `broker:<log file name>`
    access.acl_denied            a device's client published where the generated ACL does not let it (device A
                                 writing as device B); raised on the device whose credential the client used.
                                 Mosquitto logs these lines at log level debug.

The file is read from where it was last left (from its end at start-up: old lines are history, not news),
at most `MAX_READ` bytes per poll so a flood of log lines cannot stall anything; a file that shrank or was
replaced (log rotation) is read again from its start.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)
US = 1_000_000
MAX_READ = 1 << 20
MAX_CLIENTS = 100_000
_NEW_CONN = re.compile(r"New connection from ([0-9A-Fa-f.:\[\]]+?):(\d+) on port")
_CONNECTED = re.compile(r"New client connected from \S+ as (\S+) \(.*?u'([^']*)'\)")
_TLS_FAILED = re.compile(r"Client connection from (\S+) failed: .*certificate verify failed")
_DENIED = re.compile(r"Denied PUBLISH from (\S+) \(d\d, q\d, r\d, m\d+, '([^']*)'")


class BrokerLogWatcher:
    def __init__(self, path: str | Path, *, clock, raise_event: Callable[[str, str, str, dict], None],
                 device_of: Callable[[str], str | None], auth_failures: int = 10, auth_window_s: float = 300) -> None:
        self.path = Path(path)
        self.clock = clock
        self.raise_event = raise_event
        self.device_of = device_of  # broker user name -> device path (None: not a device's credential)
        self.auth_failures = auth_failures
        self.auth_window_us = int(auth_window_s * US)
        self._pos: int | None = None
        self._ino: int | None = None
        self._partial = b""
        self._last_address: str | None = None
        self._user_of: dict[str, str] = {}  # client id -> user name, from the connection lines
        self._failures: deque[tuple[int, str | None]] = deque()
        self.lines = 0
        self.errors = 0

    def poll(self) -> int:
        """Reads what was appended since the last poll (bounded); returns the number of lines handled."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return 0
        if self._pos is None:  # first look: start at the end
            self._pos, self._ino = st.st_size, st.st_ino
            return 0
        if st.st_ino != self._ino or st.st_size < self._pos:  # rotated or truncated
            self._pos, self._ino, self._partial = 0, st.st_ino, b""
        if st.st_size == self._pos:
            return 0
        with open(self.path, "rb") as f:
            f.seek(self._pos)
            chunk = f.read(MAX_READ)
        self._pos += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()[-8192:]  # an unfinished line waits for its end (bounded)
        n = 0
        for raw in lines:
            try:
                self._line(raw.decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 - one odd line must not stop the watcher
                self.errors += 1
                log.exception("a broker log line could not be read")
            n += 1
        self.lines += n
        return n

    def _line(self, line: str) -> None:
        if "New connection from " in line:
            m = _NEW_CONN.search(line)
            self._last_address = m.group(1) if m else None
        elif "New client connected from " in line:
            m = _CONNECTED.search(line)
            if m:
                if len(self._user_of) >= MAX_CLIENTS:
                    self._user_of.clear()
                self._user_of[m.group(1)] = m.group(2)
        elif "disconnected, not authorised" in line or "certificate verify failed" in line:
            self._failed(line)
        elif "Denied PUBLISH from " in line:
            m = _DENIED.search(line)
            if m:
                self._denied(m.group(1), m.group(2))

    def _failed(self, line: str) -> None:
        now = self.clock()
        address = self._last_address
        if "certificate verify failed" in line:
            m = _TLS_FAILED.search(line)
            if m is None:
                return  # OpenSSL's own line; the "Client connection from ... failed" line that follows is counted
            address = m.group(1)
        self._failures.append((now, address))
        while self._failures and self._failures[0][0] < now - self.auth_window_us:
            self._failures.popleft()
        if len(self._failures) >= self.auth_failures:
            by_address: dict[str, int] = {}
            for _, a in self._failures:
                by_address[a or "unknown"] = by_address.get(a or "unknown", 0) + 1
            self._failures.clear()
            self.raise_event(f"broker:{self.path.name}", "access.broker_auth_failures",
                             f"{sum(by_address.values())} connections refused by the broker within "
                             f"{self.auth_window_us / US:g} s (wrong credentials or certificates)",
                             {"addresses": dict(sorted(by_address.items(), key=lambda kv: -kv[1])[:20])})

    def _denied(self, client_id: str, topic: str) -> None:
        user = self._user_of.get(client_id)
        device = self.device_of(user) if user else None
        self.raise_event(device or f"broker:{self.path.name}", "access.acl_denied",
                         f"client {client_id[:100]} ({user or 'unknown user'}) published to {topic[:200]}, outside what its ACL allows",
                         {"client_id": client_id[:200], "username": user, "topic": topic[:500]})


def device_of_username(devices: Callable[[], set[str]]) -> Callable[[str], str | None]:
    """Password credentials are `<device>@k<id>`; a certificate's user name is the device path itself."""
    def device_of(user: str) -> str | None:
        known = devices()
        if user in known:
            return user
        head, sep, _ = user.rpartition("@k")
        return head if sep and head in known else None
    return device_of
