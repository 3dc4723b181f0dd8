"""Users, API tokens, dashboard sessions and one-time login links, kept in the store (tables of the security
capability), and the login rules: argon2id passwords, an optional TOTP second factor (required for the roles
in `security.mfa_roles`), failures counted per user name and per client address with a lockout.

Secrets are never stored: a token or a session id is `pg?_<random>`, and the store keeps its SHA-256. Tokens
and sessions are looked up by that hash; comparisons of secrets use constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import pyotp

from plantguard.security.sealed import SealError, is_sealed, key_of
from plantguard.domain.actor import Actor, ActorKind
from plantguard.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyAttempts, Unauthenticated
from plantguard.security.config import SecuritySettings
from plantguard.security.passwords import DUMMY_HASH, hash_password, needs_rehash, password_problem, verify_password
from plantguard.security.roles import Permission, Role, grants, parse_scopes

log = logging.getLogger(__name__)
US = 1_000_000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
TOKEN_RE = re.compile(r"^pgt_([0-9a-f]{16})_([A-Za-z0-9_\-]{43})$")
SESSION_RE = re.compile(r"^pgs_[A-Za-z0-9_\-]{43}$")
LINK_RE = re.compile(r"^pgl_[A-Za-z0-9_\-]{43}$")
TOUCH_EVERY_US = 60 * US  # last-seen times are written at most once a minute per session or token
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


@dataclass(frozen=True)
class Principal:
    """Who a request comes from, and what they may do."""

    actor: Actor
    role: Role | None
    permissions: frozenset[Permission]
    via: str  # session, token, none
    csrf: str | None = None  # a session's CSRF token (state-changing requests must echo it)
    device: str | None = None
    session_hash: str | None = None

    def can(self, p: Permission) -> bool:
        return p is Permission.PUBLIC or p in self.permissions

    @property
    def name(self) -> str:
        return self.actor.name


ANONYMOUS = Principal(Actor.system("anonymous"), None, frozenset(), "none")


@dataclass
class _Throttle:
    failures: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    locked_until: dict[str, float] = field(default_factory=dict)


class Accounts:
    def __init__(self, store, settings: SecuritySettings, *, clock, audit=None, box=None) -> None:
        """`box`: a SecretBox sealing second-factor secrets at rest (plantguard.security.sealed); without one
        they are kept as given (programs and tests that bring no key)."""
        self.store = store
        self.box = box
        self.settings = settings
        self.clock = clock
        self.audit = audit
        self._lock = threading.Lock()
        self._throttle = _Throttle()
        self._touched: dict[str, int] = {}
        self._cache: dict[str, tuple[int, Principal | None]] = {}
        self._pending_totp: dict[str, str] = {}  # user -> secret until a code confirms it
        self.known_path = None  # set by the capability: is this a path of the plant model (site .. device)?
        self.login_failures = 0
        self.on_lockout = lambda key, limit: None  # set by the security capability
        self.lockouts = 0

    def _record(self, actor, action: str, target: str = "", result: str = "ok", **detail) -> None:
        if self.audit is not None:
            try:
                self.audit.record(actor, action, target, result, detail)
            except Exception:  # noqa: BLE001 - an audit failure is logged loudly, never turned into a login failure
                log.exception("the audit log could not record %s %s", action, target)

    # -- users ----------------------------------------------------------------------------------------------
    def users(self) -> list[User]:
        rows = self.store.fetch("SELECT name, role, totp_secret, disabled, created_at, pw_changed_at FROM users ORDER BY name")
        return [User(n, Role(r), bool(t), bool(d), int(c), int(p)) for n, r, t, d, c, p in rows]

    def user(self, name: str) -> User:
        for u in self.users():
            if u.name == name:
                return u
        raise NotFound(f"no user {name!r}")

    def _row(self, name: str):
        rows = self.store.fetch("SELECT name, role, pw_hash, totp_secret, disabled FROM users WHERE name = ?", (name,))
        return rows[0] if rows else None

    def create_user(self, name: str, role: Role | str, password: str, actor: Actor) -> User:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput("a user name is 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
        role = _role(role)
        problem = password_problem(password, name)
        if problem:
            raise InvalidInput(problem)
        if self._row(name) is not None:
            raise Conflict(f"user {name!r} exists")
        now = self.clock()
        self.store.execute([("INSERT INTO users (name, role, pw_hash, totp_secret, disabled, created_at, pw_changed_at) VALUES (?, ?, ?, NULL, FALSE, ?, ?)",
                             (name, role.value, hash_password(password), now, now))])
        self._record(actor, "user.create", name, role=role.value)
        return self.user(name)

    def set_password(self, name: str, password: str, actor: Actor) -> None:
        if self._row(name) is None:
            raise NotFound(f"no user {name!r}")
        problem = password_problem(password, name)
        if problem:
            raise InvalidInput(problem)
        self.store.execute([("UPDATE users SET pw_hash = ?, pw_changed_at = ? WHERE name = ?", (hash_password(password), self.clock(), name)),
                            ("DELETE FROM sessions WHERE user_name = ?", (name,))])  # a new password ends every session
        self._forget()
        self._record(actor, "user.password", name)

    def set_role(self, name: str, role: Role | str, actor: Actor) -> User:
        role = _role(role)
        if self._row(name) is None:
            raise NotFound(f"no user {name!r}")
        self._keep_an_admin(name, role)
        self.store.execute([("UPDATE users SET role = ? WHERE name = ?", (role.value, name))])
        self._forget()
        self._record(actor, "user.role", name, role=role.value)
        return self.user(name)

    def set_disabled(self, name: str, disabled: bool, actor: Actor) -> User:
        if self._row(name) is None:
            raise NotFound(f"no user {name!r}")
        if disabled:
            self._keep_an_admin(name, None)
        stmts = [("UPDATE users SET disabled = ? WHERE name = ?", (bool(disabled), name))]
        if disabled:
            stmts.append(("DELETE FROM sessions WHERE user_name = ?", (name,)))
        self.store.execute(stmts)
        self._forget()
        self._record(actor, "user.disable" if disabled else "user.enable", name)
        return self.user(name)

    def _keep_an_admin(self, name: str, new_role: Role | None) -> None:
        admins = [u.name for u in self.users() if u.role is Role.admin and not u.disabled]
        if admins == [name] and new_role is not Role.admin:
            raise Conflict("this is the last enabled admin: make another admin first")

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

    def keys_in_use(self) -> set[str]:
        return {key_of(s) for (s,) in self.store.fetch("SELECT totp_secret FROM users WHERE totp_secret IS NOT NULL")
                if is_sealed(s)}

    # -- login ----------------------------------------------------------------------------------------------
    def _check_throttle(self, keys: list[str]) -> None:
        now = time.monotonic()
        for k in keys:
            until = self._throttle.locked_until.get(k)
            if until is not None and until > now:
                raise TooManyAttempts("too many failed logins: try again later", int(until - now) + 1)

    def _failed(self, keys_limits: list[tuple[str, int]]) -> None:
        now = time.monotonic()
        window = self.settings.login_window
        locked = []
        with self._lock:
            self.login_failures += 1
            for k, limit in keys_limits:
                q = self._throttle.failures[k]
                q.append(now)
                while q and q[0] < now - window:
                    q.popleft()
                if len(q) >= limit:
                    self._throttle.locked_until[k] = now + self.settings.login_lockout
                    q.clear()
                    self.lockouts += 1
                    locked.append((k, limit))
            if len(self._throttle.failures) > 100_000:  # bounded: an address sweep must not grow this forever
                self._throttle.failures.clear()
        for k, limit in locked:
            try:
                self.on_lockout(k, limit)  # a security event (access.auth_failures)
            except Exception:  # noqa: BLE001 - the lockout holds whatever the event does
                log.exception("reporting the lockout of %s failed", k)

    def login(self, name: str, password: str, *, totp: str | None = None, address: str = "unknown") -> tuple[str, Principal]:
        """A new session for these credentials: (session secret, principal). Raises Unauthenticated (the same
        message whatever was wrong) or TooManyAttempts."""
        name = str(name)[:64]
        keys = [f"user:{name.lower()}", f"addr:{address}"]
        self._check_throttle(keys)
        row = self._row(name) if NAME_RE.match(name) else None
        ok = verify_password(row[2] if row else DUMMY_HASH, password if isinstance(password, str) else "")
        reason = None
        if row is None or not ok:
            reason = "bad name or password"
        elif row[4]:
            reason = "user disabled"
        elif row[3] and not self._totp_ok(row[3], row[0], totp):
            reason = "second factor missing or wrong"
        elif not row[3] and Role(row[1]) in self.settings.mfa_roles:
            reason = f"the {row[1]} role requires a second factor, and this user has none: an admin must set it up"
        if reason:
            self._failed([(keys[0], self.settings.login_max_failures), (keys[1], self.settings.login_max_failures_per_address)])
            self._record(Actor.user(name) if NAME_RE.match(name) else Actor.system("anonymous"), "login", name, "failed",
                         reason=reason, address=address)
            log.warning("login failed for %r from %s: %s", name, address, reason)
            raise Unauthenticated("login failed: wrong user name, password or second factor")
        if needs_rehash(row[2]):
            self.store.execute([("UPDATE users SET pw_hash = ? WHERE name = ?", (hash_password(password), name))])
        session = self._new_session(name, mfa=bool(row[3]))
        self._record(Actor.user(name), "login", name, address=address, mfa=bool(row[3]))
        return session, self.session(session)

    def _new_session(self, name: str, *, mfa: bool) -> str:
        secret = "pgs_" + secrets.token_urlsafe(32)
        now = self.clock()
        self.store.execute([("INSERT INTO sessions (id_hash, user_name, csrf, created_at, last_seen, mfa) VALUES (?, ?, ?, ?, ?, ?)",
                             (_h(secret), name, secrets.token_urlsafe(32), now, now, mfa))])
        return secret

    def session(self, secret: str | None, *, touch: bool = True) -> Principal | None:
        """The principal of a live session, or None (unknown, idle too long, too old, user disabled). `touch=False`
        checks without counting as activity (a live stream's periodic check must not keep an idle session open)."""
        if not secret or not SESSION_RE.match(secret):
            return None
        key = _h(secret)
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_US:
            return hit[1]
        rows = self.store.fetch("SELECT s.user_name, s.csrf, s.created_at, s.last_seen, u.role, u.disabled FROM sessions s "
                                "JOIN users u ON u.name = s.user_name WHERE s.id_hash = ?", (key,))
        p = None
        if rows:
            user, csrf, created, seen, role, disabled = rows[0]
            if disabled or now - seen > self.settings.session_idle * US or now - created > self.settings.session_max * US:
                self.store.execute([("DELETE FROM sessions WHERE id_hash = ?", (key,))])
            else:
                p = Principal(Actor.user(user), Role(role), grants(role), "session", csrf=csrf, session_hash=key)
                if touch and now - self._touched.get(key, 0) > TOUCH_EVERY_US:
                    self._touched[key] = now
                    self.store.execute([("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, key))])
        self._remember(key, now, p)
        return p

    def logout(self, secret: str | None) -> None:
        p = self.session(secret)
        if p is None:
            return
        self.store.execute([("DELETE FROM sessions WHERE id_hash = ?", (p.session_hash,))])
        self._forget()
        self._record(p.actor, "logout", p.name)

    def _remember(self, key: str, now: int, p: Principal | None) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, p)

    def _forget(self) -> None:
        self._cache.clear()

    # -- one-time login links (the demo's first click) -------------------------------------------------------------
    def login_link(self, name: str, ttl_s: float = 86400) -> str:
        if self._row(name) is None:
            raise NotFound(f"no user {name!r}")
        secret = "pgl_" + secrets.token_urlsafe(32)
        self.store.execute([("INSERT INTO login_links (id_hash, user_name, expires_at, used_at) VALUES (?, ?, ?, NULL)",
                             (_h(secret), name, self.clock() + int(ttl_s * US)))])
        return secret

    def redeem_link(self, secret: str, *, address: str = "unknown") -> tuple[str, Principal]:
        keys = [f"addr:{address}"]
        self._check_throttle(keys)
        rows = self.store.fetch("SELECT user_name, expires_at, used_at FROM login_links WHERE id_hash = ?", (_h(secret),)) \
            if isinstance(secret, str) and LINK_RE.match(secret) else []
        now = self.clock()
        if not rows or rows[0][2] is not None or rows[0][1] < now:
            self._failed([(keys[0], self.settings.login_max_failures_per_address)])
            self._record(Actor.system("anonymous"), "login_link", "", "failed", address=address)
            raise Unauthenticated("this login link is unknown, used or expired")
        name = rows[0][0]
        row = self._row(name)
        if row is None or row[4] or Role(row[1]) in self.settings.mfa_roles:
            # a link is one factor: it never opens a role that must use two, nor a disabled user
            self._record(Actor.user(name), "login_link", name, "failed", address=address, reason="role requires a second factor or user disabled")
            raise Unauthenticated("this login link cannot be used for this user: log in with the form and a second factor")
        self.store.execute([("UPDATE login_links SET used_at = ? WHERE id_hash = ?", (now, _h(secret)))])
        session = self._new_session(name, mfa=False)
        self._record(Actor.user(name), "login", name, address=address, via="link")
        return session, self.session(session)

    # -- API tokens -----------------------------------------------------------------------------------------
    def create_token(self, owner: str, name: str, *, scopes: list[str] | None = None, days: int = 90,
                     device: str | None = None, actor: Actor) -> tuple[str, TokenInfo]:
        """A new token (its secret is returned once): at most its owner's role, limited to `scopes`, for `days`."""
        row = self._row(owner)
        if row is None:
            raise NotFound(f"no user {owner!r}")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput("a token name is 1-64 letters, digits, '_', '.', '@' or '-'")
        if not isinstance(days, int) or not 1 <= days <= self.settings.token_max_days:
            raise InvalidInput(f"a token lasts 1 to {self.settings.token_max_days} days")
        try:
            perms = parse_scopes(scopes, row[1])
        except ValueError as e:
            raise InvalidInput(str(e)) from None
        if device is not None and perms != {Permission.INGEST}:
            raise InvalidInput("a device token has the scope 'ingest' only")
        if device is not None and self.known_path is not None and not self.known_path(device.strip("/")):
            raise InvalidInput(f"{device!r} is not a path of the plant model (a device, or the asset, line, area or site of a gateway)")
        tid, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = self.clock()
        self.store.execute([("INSERT INTO api_tokens (id, secret_hash, name, owner, role, scopes, device, created_at, expires_at, revoked_at, last_used_at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                             (tid, _h(secret), name, owner, row[1], ",".join(sorted(p.value for p in perms)), device, now, now + days * 86400 * US))])
        self._record(actor, "token.create", f"{owner}/{name}", id=tid, scopes=sorted(p.value for p in perms), days=days, device=device)
        return f"pgt_{tid}_{secret}", self.token(tid)

    def tokens(self, owner: str | None = None) -> list[TokenInfo]:
        sql = "SELECT id, name, owner, role, scopes, created_at, expires_at, revoked_at, last_used_at, device FROM api_tokens"
        rows = self.store.fetch(sql + (" WHERE owner = ?" if owner else "") + " ORDER BY created_at", (owner,) if owner else ())
        return [TokenInfo(i, n, o, Role(r), tuple(s.split(",")) if s else (), c, e, rv, lu, d) for i, n, o, r, s, c, e, rv, lu, d in rows]

    def token(self, tid: str) -> TokenInfo:
        for t in self.tokens():
            if t.id == tid:
                return t
        raise NotFound(f"no token {tid!r}")

    def revoke_token(self, tid: str, actor: Actor) -> TokenInfo:
        t = self.token(tid)
        if t.revoked_at is None:
            self.store.execute([("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (self.clock(), tid))])
            self._forget()
            self._record(actor, "token.revoke", f"{t.owner}/{t.name}", id=tid)
        return self.token(tid)

    def authenticate_token(self, text: str | None) -> Principal | None:
        m = TOKEN_RE.match(text or "")
        if not m:
            return None
        tid, secret = m.groups()
        now = self.clock()
        key = "t:" + _h(text)
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_US:
            return hit[1]
        rows = self.store.fetch("SELECT t.secret_hash, t.name, t.owner, t.scopes, t.expires_at, t.revoked_at, t.device, u.role, u.disabled "
                                "FROM api_tokens t JOIN users u ON u.name = t.owner WHERE t.id = ?", (tid,))
        p = None
        if rows:
            sh, name, owner, scopes, expires, revoked, device, role, disabled = rows[0]
            if hmac.compare_digest(sh, _h(secret)) and revoked is None and expires > now and not disabled:
                perms = frozenset(Permission(s) for s in scopes.split(",") if s) & grants(role)  # never above the owner's role today
                actor = Actor(ActorKind.device, device) if device else Actor(ActorKind.token, f"{owner}/{name}")
                p = Principal(actor, Role(role), perms, "token", device=device)
                if now - self._touched.get(tid, 0) > TOUCH_EVERY_US:
                    self._touched[tid] = now
                    self.store.execute([("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, tid))])
        self._remember(key, now, p)
        return p

    # -- first start ------------------------------------------------------------------------------------------
    def ensure_admin(self, password: str | None = None, name: str = "admin") -> str | None:
        """When no user exists: creates the admin with `password` (from the environment) or a generated one,
        returned so that it is printed once. None when users exist."""
        if self.users():
            return None
        generated = password is None
        pw = password if password is not None else secrets.token_urlsafe(18)
        problem = password_problem(pw, name)
        if problem:
            raise InvalidInput(f"the admin password given in the environment is refused: {problem}")
        self.create_user(name, Role.admin, pw, Actor.system("first-start"))
        return pw if generated else None

    def require(self, p: Principal, perm: Permission) -> None:
        if not p.can(perm):
            raise Forbidden(f"{p.actor} lacks the permission {perm.value!r}") if p.via != "none" else \
                Unauthenticated("log in, or send an API token (Authorization: Bearer ...)")


def _role(role) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r} (roles: {', '.join(r.value for r in Role)})") from None
