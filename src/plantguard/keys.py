"""Keys kept outside the store: what protects secrets and learned state at rest.

    ring = Keyring.open(path, env="PLANTGUARD_SECRETS_KEY")   # made on first use, owner-only (0600)
    ring.primary        # (kid, key bytes): what new values are sealed with
    ring.get(kid)       # any key of the ring: what older values were sealed with
    ring.rotate()       # a new primary; older keys stay until nothing uses them (retire)

A ring is a text file, one key per line (`pgkey1 <kid> <base64url key>`), the first line the primary. A store
copied without its key files gives no usable secret and no state that would be accepted: back the key files up
apart from the store (docs/security.md). `env` names an environment variable holding the ring instead
(comma-separated base64url keys, primary first): for hosts that keep keys in a secrets manager.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path

from plantguard.errors import PlantguardError
from plantguard.fsperm import private_dir, write_private

log = logging.getLogger(__name__)
KEY_BYTES = 32
_TAG = "pgkey1"


class KeyFileError(PlantguardError):
    """A key file that cannot be used (unreadable, malformed, or missing a key a value names)."""


def kid_of(key: bytes) -> str:
    return hashlib.sha256(b"plantguard-key-id\0" + key).hexdigest()[:12]


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    text = text.strip()
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise KeyFileError("a key is not base64url text") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"a key has {len(key)} bytes, not {KEY_BYTES}")
    return key


class Keyring:
    def __init__(self, keys: list[bytes], path: Path | None = None, created: bool = False) -> None:
        if not keys:
            raise KeyFileError("a key ring needs at least one key")
        self.keys = list(keys)
        self.path = path
        self.created = created  # made by this process: there was no key before (a first start, a migration)
        self._by_kid = {kid_of(k): k for k in self.keys}

    @classmethod
    def generate(cls) -> "Keyring":
        return cls([secrets.token_bytes(KEY_BYTES)], created=True)

    @classmethod
    def open(cls, path: str | Path, env: str | None = None) -> "Keyring":
        """The ring in `env` when that variable is set, else the file at `path`, made (0600) when missing."""
        if env and os.environ.get(env, "").strip():
            return cls([_unb64(t) for t in os.environ[env].split(",") if t.strip()])
        path = Path(path)
        if not path.exists():
            private_dir(path.parent)
            ring = cls.generate()
            ring.path = path
            try:
                write_private(path, ring._text().encode(), exclusive=True)
            except FileExistsError:  # another process made it first: use theirs
                return cls.open(path)
            log.info("made key %s (back it up apart from the store: docs/security.md)", path)
            return ring
        st = path.stat()
        if st.st_mode & 0o077:
            log.warning("key file %s was readable by others (mode %o): made owner-only", path, st.st_mode & 0o777)
            os.chmod(path, 0o600)
        keys = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 3 or parts[0] != _TAG:
                raise KeyFileError(f"{path}:{n}: not a key line (`{_TAG} <kid> <key>`)")
            key = _unb64(parts[2])
            if kid_of(key) != parts[1]:
                raise KeyFileError(f"{path}:{n}: the key does not match its id {parts[1]} (damaged file?)")
            keys.append(key)
        if not keys:
            raise KeyFileError(f"{path} holds no key")
        return cls(keys, path)

    @property
    def primary(self) -> tuple[str, bytes]:
        return kid_of(self.keys[0]), self.keys[0]

    def kids(self) -> list[str]:
        return [kid_of(k) for k in self.keys]

    def get(self, kid: str) -> bytes | None:
        return self._by_kid.get(kid)

    def _text(self) -> str:
        return "".join(f"{_TAG} {kid_of(k)} {_b64(k)}\n" for k in self.keys)

    def _save(self) -> None:
        if self.path is None:
            raise KeyFileError("this key ring comes from the environment: change the variable to rotate it")
        write_private(self.path, self._text().encode())
        self._by_kid = {kid_of(k): k for k in self.keys}

    def rotate(self) -> str:
        """A new primary key (returned by id); the older keys stay so that what they sealed still opens."""
        self.keys.insert(0, secrets.token_bytes(KEY_BYTES))
        self._save()
        return self.primary[0]

    def retire(self, in_use: set[str]) -> list[str]:
        """Drops the non-primary keys no stored value names; returns their ids."""
        keep = [self.keys[0]] + [k for k in self.keys[1:] if kid_of(k) in in_use]
        gone = [kid_of(k) for k in self.keys if k not in keep]
        self.keys = keep
        self._save()
        return gone


def key_dir(data_dir: str | Path, configured: str | None = None) -> Path:
    return Path(configured) if configured else Path(data_dir) / "keys"


def secrets_ring(data_dir: str | Path, configured: str | None = None) -> Keyring:
    """Seals reversible secrets (second-factor secrets) in the store."""
    return Keyring.open(key_dir(data_dir, configured) / "secrets.key", env="PLANTGUARD_SECRETS_KEY")


def state_ring(data_dir: str | Path, configured: str | None = None) -> Keyring:
    """Authenticates learned state (analytics checkpoints) in the store."""
    return Keyring.open(key_dir(data_dir, configured) / "state.key", env="PLANTGUARD_STATE_KEY")
