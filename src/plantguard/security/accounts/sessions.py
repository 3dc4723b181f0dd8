"""Logins with their lockout, dashboard sessions and one-time login links."""

from __future__ import annotations

import secrets
import time

from plantguard.domain.actor import Actor
from plantguard.domain.roles import Principal, Role, grants
from plantguard.errors import NotFound, TooManyAttempts, Unauthenticated
from plantguard.security.accounts._base import LINK_RE, NAME_RE, SESSION_RE, US, _h, log
from plantguard.security.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password


class Sessions:
    """Logins with their lockout, dashboard sessions and one-time login links (a part of Accounts; AccountsBase sets up its state)."""

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
        hit = self._cached(key, now)
        if hit is not None:
            return hit[0]
        rows = self.store.fetch("SELECT s.user_name, s.csrf, s.created_at, s.last_seen, u.role, u.disabled FROM sessions s "
                                "JOIN users u ON u.name = s.user_name WHERE s.id_hash = ?", (key,))
        p = None
        if rows:
            user, csrf, created, seen, role, disabled = rows[0]
            seen = max(seen, self._seen.get(key, 0))
            if not (disabled or now - seen > self.settings.session_idle * US or now - created > self.settings.session_max * US):
                p = Principal(Actor.user(user), Role(role), grants(role), "session", csrf=csrf, session_hash=key)
                if touch:
                    self._seen[key] = now
            # an ended session is refused here and deleted by flush_activity(), not by this check
        self._remember(key, now, p)
        return p

    def logout(self, secret: str | None) -> None:
        p = self.session(secret)
        if p is None:
            return
        self.store.execute([("DELETE FROM sessions WHERE id_hash = ?", (p.session_hash,))])
        self._forget()
        self._record(p.actor, "logout", p.name)



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
