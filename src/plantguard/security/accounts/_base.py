"""What every part of the accounts shares: the secrets' forms, the records, the state and the audit hook."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field

from plantguard.domain.roles import Principal, Role
from plantguard.errors import InvalidInput
from plantguard.security.config import SecuritySettings

log = logging.getLogger("plantguard.security.accounts")

US = 1_000_000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
TOKEN_RE = re.compile(r"^pgt_([0-9a-f]{16})_([A-Za-z0-9_\-]{43})$")
SESSION_RE = re.compile(r"^pgs_[A-Za-z0-9_\-]{43}$")
LINK_RE = re.compile(r"^pgl_[A-Za-z0-9_\-]{43}$")
CACHE_US = 5 * US
def _h(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
@dataclass(frozen=True)


class User:
    name: str
    role: Role
    mfa: bool
    disabled: bool
    created_at: int
    password_changed_at: int


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    owner: str
    role: Role
    scopes: tuple[str, ...]
    created_at: int
    expires_at: int
    revoked_at: int | None = None
    last_used_at: int | None = None
    device: str | None = None  # a device token may only send that device's readings




@dataclass
class _Throttle:
    failures: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    locked_until: dict[str, float] = field(default_factory=dict)


def _role(role) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r} (roles: {', '.join(r.value for r in Role)})") from None


class AccountsBase:
    def __init__(self, store, settings: SecuritySettings, *, clock, audit=None, box=None, known_path=None) -> None:
        """`box`: a SecretBox sealing second-factor secrets at rest (plantguard.security.sealed); without one
        they are kept as given (programs and tests that bring no key)."""
        self.store = store
        self.box = box
        self.settings = settings
        self.clock = clock
        self.audit = audit
        self._lock = threading.Lock()
        self._throttle = _Throttle()
        # activity seen by checks, written by flush_activity() in one statement (the security capability's
        # background thread): checking a credential writes nothing
        self._seen: dict[str, int] = {}   # session hash -> last activity
        self._used: dict[str, int] = {}   # token id -> last use
        self._cache: dict[str, tuple[int, Principal | None]] = {}
        self._pending_totp: dict[str, str] = {}  # user -> secret until a code confirms it
        self.known_path = known_path  # is this a path of the plant model (site .. device)? None: any path
        self.login_failures = 0
        self.on_lockout = lambda key, limit: None  # set by the security capability
        self.lockouts = 0

    def _record(self, actor, action: str, target: str = "", result: str = "ok", **detail) -> None:
        if self.audit is not None:
            try:
                self.audit.record(actor, action, target, result, detail)
            except Exception:  # noqa: BLE001 - an audit failure is logged loudly, never turned into a login failure
                log.exception("the audit log could not record %s %s", action, target)

    # -- the short cache of credential checks (a few seconds: a revocation shows within CACHE_US) --------------
    def _cached(self, key: str, now: int) -> tuple[Principal | None] | None:
        """(principal,) when `key` was checked less than CACHE_US ago (the principal may be None: refused)."""
        hit = self._cache.get(key)
        return (hit[1],) if hit is not None and now - hit[0] < CACHE_US else None

    def _remember(self, key: str, now: int, p: Principal | None) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, p)

    def _forget(self) -> None:
        self._cache.clear()
