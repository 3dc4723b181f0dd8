"""Per-device MQTT credentials and the broker files made from them: Mosquitto's password file and ACL file,
generated from the inventory so that a device can publish only under its own topic
(`<prefix>/dev/<site>/<area>/<line>/<asset>/<device>`), and plantguard's ingest client can only read.

    creds.issue("s1/a1/l1/pump1/plc1", actor)      -> (username, password)   the password is shown once
    creds.rotate(device, actor, overlap_s=86400)   -> a new key; the old ones keep working for the overlap
    creds.revoke(device, actor)                    -> every key of the device stops at the next broker reload
    creds.suspend(device) / resume(device)         (quarantine)

After every change the files are rewritten atomically and the broker reloads them (SIGHUP to the pid in
`security.broker.pid_file`; Mosquitto re-reads its password and ACL files on SIGHUP). The store keeps the
password hashes in Mosquitto's own format (`$7$`, PBKDF2-HMAC-SHA512), never the passwords.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from plantguard.fsperm import write_private
from plantguard.domain.actor import Actor
from plantguard.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)
US = 1_000_000
ITERATIONS = 1000  # Mosquitto reads the count from the hash; its own default is 101


class BrokerSettings(BaseModel):
    """`security.broker`: where the generated files go and how the broker is told to reload them."""

    model_config = ConfigDict(extra="forbid")
    password_file: str = Field(description="Mosquitto password_file to write")
    acl_file: str = Field(description="Mosquitto acl_file to write")
    pid_file: str | None = Field(None, description="the broker's pid_file: it gets SIGHUP after every change")
    topic_prefix: str = Field("plantguard/v1", description="the MQTT connector's topic prefix")
    ingest_username: str = Field("plantguard-ingest", max_length=256, description="the user plantguard's MQTT connector logs in as")
    ingest_password_env: str = Field("PLANTGUARD_MQTT_PASSWORD", description="environment variable holding that user's password")
    log_file: str | None = Field(None, description="the broker's log file (log_dest file): refused connections and ACL denials become security events")
    auth_failures: int = Field(10, ge=1, le=100_000, description="refused connections within auth_window_s that raise access.broker_auth_failures")
    auth_window_s: float = Field(300, ge=1, le=86400, description="the window of auth_failures")


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """A password hash in Mosquitto's `$7$` format (PBKDF2-HMAC-SHA512, as mosquitto_passwd writes)."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass(frozen=True)
class BrokerCredential:
    username: str
    device: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    suspended: bool

    def active(self, now: int) -> bool:
        return self.revoked_at is None and not self.suspended and (self.expires_at is None or self.expires_at > now)


class BrokerCredentials:
    def __init__(self, store, settings: BrokerSettings | None, *, clock, devices, audit=None, certificate_devices=None) -> None:
        self.store = store
        # devices with a live client certificate: on a TLS listener with use_identity_as_username the certificate's
        # common name (the device path) is the user name
        self._cert_devices = certificate_devices or (lambda: set())
        self.settings = settings
        self.clock = clock
        self._devices = devices  # callable -> the set of device paths in the current model
        self.audit = audit
        self._lock = threading.Lock()
        self.reloads = 0

    def _record(self, actor, action: str, target: str, **detail) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target, "ok", detail)

    def credentials(self, device: str | None = None) -> list[BrokerCredential]:
        sql = "SELECT username, device, created_at, expires_at, revoked_at, suspended FROM mqtt_credentials"
        rows = self.store.fetch(sql + (" WHERE device = ?" if device else "") + " ORDER BY created_at", (device,) if device else ())
        return [BrokerCredential(u, d, c, e, r, bool(s)) for u, d, c, e, r, s in rows]

    def issue(self, device: str, actor: Actor) -> tuple[str, str]:
        """A new key for a device of the model: (username, password); the password is not kept."""
        if device not in self._devices():
            raise NotFound(f"no device {device!r} in the plant model")
        username = f"{device}@k{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(24)
        self.store.execute([("INSERT INTO mqtt_credentials (username, device, pw_hash, created_at, expires_at, revoked_at, suspended) "
                             "VALUES (?, ?, ?, ?, NULL, NULL, FALSE)", (username, device, mosquitto_hash(password), self.clock()))])
        self._record(actor, "device.credential.issue", device, username=username)
        self.apply()
        return username, password

    def rotate(self, device: str, actor: Actor, overlap_s: float = 86400) -> tuple[str, str]:
        """A new key; the device's other live keys expire after `overlap_s` (time to deploy the new one)."""
        until = self.clock() + int(overlap_s * US)
        self.store.execute([("UPDATE mqtt_credentials SET expires_at = ? WHERE device = ? AND revoked_at IS NULL AND "
                             "(expires_at IS NULL OR expires_at > ?)", (until, device, until))])
        return self.issue(device, actor)

    def revoke(self, device: str, actor: Actor) -> int:
        live = [c for c in self.credentials(device) if c.revoked_at is None]
        if not live:
            raise NotFound(f"device {device!r} has no credential to revoke")
        self.store.execute([("UPDATE mqtt_credentials SET revoked_at = ? WHERE device = ? AND revoked_at IS NULL", (self.clock(), device))])
        self._record(actor, "device.credential.revoke", device, keys=len(live))
        self.apply()
        return len(live)

    def suspend(self, device: str, suspended: bool, actor: Actor) -> None:
        self.store.execute([("UPDATE mqtt_credentials SET suspended = ? WHERE device = ?", (bool(suspended), device))])
        self._record(actor, "device.credential.suspend" if suspended else "device.credential.resume", device)
        self.apply()

    # -- the broker's files ------------------------------------------------------------------------------------
    def render(self) -> tuple[str, str]:
        """(password file, ACL file) for the live credentials and the ingest user."""
        s = self.settings
        if s is None:
            raise InvalidInput("security.broker is not configured")
        now = self.clock()
        rows = self.store.fetch("SELECT username, device, pw_hash, expires_at, revoked_at, suspended FROM mqtt_credentials ORDER BY username")
        pw_lines, acl = [], ["# written by plantguard from the device inventory: edits are overwritten", ""]
        ingest_pw = os.environ.get(s.ingest_password_env)
        if ingest_pw:
            pw_lines.append(f"{s.ingest_username}:{mosquitto_hash(ingest_pw)}")
        # the ingest client reads everything, with its password or (on a TLS listener) its client certificate
        _check_name(s.ingest_username)
        acl += [f"user {s.ingest_username}", f"topic read {s.topic_prefix}/#", ""]
        for username, device, pw_hash, expires, revoked, suspended in rows:
            if revoked is not None or suspended or (expires is not None and expires <= now):
                continue
            _check_name(username)
            pw_lines.append(f"{username}:{pw_hash}")
            acl += [f"user {username}", f"topic write {s.topic_prefix}/dev/{device}", ""]
        for device in sorted(self._cert_devices()):
            _check_name(device)
            acl += [f"user {device}", f"topic write {s.topic_prefix}/dev/{device}", ""]
        return "\n".join(pw_lines) + "\n", "\n".join(acl) + "\n"

    def apply(self) -> None:
        """Writes both files (atomically) and asks the broker to reload them."""
        if self.settings is None:
            return
        with self._lock:
            pw, acl = self.render()
            _atomic_write(Path(self.settings.password_file), pw)
            _atomic_write(Path(self.settings.acl_file), acl)
            pid_file = self.settings.pid_file
            if pid_file and Path(pid_file).is_file():
                try:
                    os.kill(int(Path(pid_file).read_text().strip()), signal.SIGHUP)
                    self.reloads += 1
                except (ValueError, ProcessLookupError, PermissionError) as e:
                    log.error("could not ask the broker to reload its password and ACL files (%s): %s", pid_file, e)


def listener_conf(*, port: int, host: str, ca_file: str, cert_file: str, key_file: str, crl_file: str) -> str:
    """The mosquitto.conf lines of a mutual-TLS listener that takes device certificates from the built-in CA: the
    certificate's common name (the device path) is the user name the generated ACL knows."""
    return "\n".join([f"listener {port} {host}", f"cafile {ca_file}", f"certfile {cert_file}", f"keyfile {key_file}",
                      "require_certificate true", "use_identity_as_username true", f"crlfile {crl_file}",
                      "tls_version tlsv1.2", ""])


def _check_name(username: str) -> None:
    # one line per user in both files: a newline or a space would let a name write a second rule
    if any(c in username for c in "\n\r\t :"):
        raise InvalidInput(f"a broker user name may not contain spaces, ':' or line breaks: {username!r}")


def _atomic_write(path: Path, text: str) -> None:
    write_private(path, text.encode())
