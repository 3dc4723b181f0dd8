"""The TOTP second factor, its secrets sealed at rest, and the secrets key."""

from __future__ import annotations

import pyotp

from plantguard.domain.actor import Actor
from plantguard.errors import InvalidInput, NotFound
from plantguard.security.accounts._base import log
from plantguard.security.sealed import SealError, is_sealed, key_of


class SecondFactor:
    """The TOTP second factor, its secrets sealed at rest, and the secrets key (a part of Accounts; AccountsBase sets up its state)."""

    # -- TOTP -----------------------------------------------------------------------------------------------
    def start_totp(self, name: str, actor: Actor) -> str:
        """A new secret for the user's authenticator app (otpauth:// URI); active once confirmed with a code."""
        if self._row(name) is None:
            raise NotFound(f"no user {name!r}")
        secret = pyotp.random_base32()
        with self._lock:
            self._pending_totp[name] = secret
        return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="plantguard")

    def confirm_totp(self, name: str, code: str, actor: Actor) -> None:
        secret = self._pending_totp.get(name)
        if secret is None:
            raise InvalidInput("start the second factor first")
        if not pyotp.TOTP(secret).verify(str(code), valid_window=1):
            raise InvalidInput("the code does not match: check the authenticator's clock")
        self.store.execute([("UPDATE users SET totp_secret = ? WHERE name = ?", (self._seal_totp(secret, name), name))])
        self._pending_totp.pop(name, None)
        self._record(actor, "user.mfa_enabled", name)

    def _seal_totp(self, secret: str, name: str) -> str:
        return self.box.seal(secret, f"users.totp_secret:{name}") if self.box is not None else secret

    def _totp_ok(self, stored: str, name: str, code: str | None) -> bool:
        if not code:
            return False
        if is_sealed(stored):
            if self.box is None:
                return False
            try:
                stored = self.box.open(stored, f"users.totp_secret:{name}")
            except SealError as e:  # a store restored without its key: the second factor fails closed
                log.error("the second-factor secret of %s cannot be opened: %s", name, e)
                return False
        return pyotp.TOTP(stored).verify(str(code), valid_window=1)

    def seal_secrets(self) -> int:
        """Seals every second-factor secret still kept in clear (stores written before sealing) and seals again
        under the primary key those sealed with an older one (after a rotation). Returns how many changed."""
        if self.box is None:
            return 0
        primary = self.box.ring.primary[0]
        changes = []
        for name, secret in self.store.fetch("SELECT name, totp_secret FROM users WHERE totp_secret IS NOT NULL"):
            if is_sealed(secret) and key_of(secret) == primary:
                continue
            try:
                changes.append(("UPDATE users SET totp_secret = ? WHERE name = ?",
                                (self.box.reseal(secret, f"users.totp_secret:{name}"), name)))
            except SealError as e:
                log.error("the second-factor secret of %s cannot be sealed again: %s", name, e)
        if changes:
            self.store.execute(changes)
        return len(changes)

    def rotate_key(self) -> tuple[str, int]:
        """A new primary key in the secrets ring, every second-factor secret sealed again under it; returns (the
        new key id, how many secrets were sealed again)."""
        if self.box is None:
            from plantguard.errors import Unavailable

            raise Unavailable("this platform seals no secrets (no secrets key ring)")
        kid = self.box.ring.rotate()
        return kid, self.seal_secrets()

    def key_ring(self):
        """The secrets key ring (plantguard.keys.Keyring), None without one."""
        return self.box.ring if self.box is not None else None

    def keys_in_use(self) -> set[str]:
        return {key_of(s) for (s,) in self.store.fetch("SELECT totp_secret FROM users WHERE totp_secret IS NOT NULL")
                if is_sealed(s)}
