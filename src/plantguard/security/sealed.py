"""Reversible secrets sealed at rest: AES-256-GCM under a key of the secrets key ring (plantguard.keys), bound to
the place they are stored, so a store copied without the key yields nothing usable and a sealed value moved to
another row (one user's TOTP secret onto another) does not open.

    box = SecretBox(ring)
    text = box.seal("JBSWY3DP...", "users.totp_secret:alice")   # 'pgsec1:<kid>:<base64url nonce+ciphertext>'
    box.open(text, "users.totp_secret:alice")                   # the secret; SealError if it cannot be opened
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from plantguard.errors import PlantguardError

PREFIX = "pgsec1:"


class SealError(PlantguardError):
    """A sealed value that cannot be opened here (its key is not in the ring, or it was altered or moved)."""


def is_sealed(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def key_of(value: str) -> str | None:
    return value.split(":", 2)[1] if is_sealed(value) and value.count(":") >= 2 else None


class SecretBox:
    def __init__(self, ring) -> None:
        self.ring = ring

    def seal(self, secret: str, context: str) -> str:
        kid, key = self.ring.primary
        nonce = os.urandom(12)
        ct = AESGCM(key).encrypt(nonce, secret.encode(), context.encode())
        return f"{PREFIX}{kid}:{base64.urlsafe_b64encode(nonce + ct).decode().rstrip('=')}"

    def open(self, value: str, context: str) -> str:
        if not is_sealed(value):
            raise SealError("not a sealed value")
        _, kid, body = value.split(":", 2)
        key = self.ring.get(kid)
        if key is None:
            raise SealError(f"sealed with key {kid}, which is not in the secrets key ring (restored without its key?)")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, ValueError, UnicodeDecodeError):
            raise SealError("the sealed value does not open: altered, or moved from another place") from None

    def reseal(self, value: str, context: str) -> str:
        """Sealed again under the primary key (rotation); a plain value is sealed."""
        return self.seal(self.open(value, context) if is_sealed(value) else value, context)
