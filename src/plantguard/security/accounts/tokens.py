"""API tokens, and the batched record of session activity and token use."""

from __future__ import annotations

import hmac
import secrets

from plantguard.domain.actor import Actor, ActorKind
from plantguard.domain.roles import Permission, Principal, Role, grants, parse_scopes
from plantguard.errors import InvalidInput, NotFound
from plantguard.security.accounts._base import NAME_RE, TOKEN_RE, TokenInfo, US, _h


class Tokens:
    """API tokens, and the batched record of session activity and token use (a part of Accounts; AccountsBase sets up its state)."""

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
        used = dict(self._used)  # uses not yet flushed
        return [TokenInfo(i, n, o, Role(r), tuple(s.split(",")) if s else (), c, e, rv, max(lu or 0, used.get(i, 0)) or None, d)
                for i, n, o, r, s, c, e, rv, lu, d in rows]

    def flush_activity(self) -> int:
        """Writes the session activity and token uses seen since the last flush, and deletes the sessions that
        ended (idle too long, too old, user disabled), in one transaction; returns the rows touched."""
        seen, self._seen = self._seen, {}
        used, self._used = self._used, {}
        now = self.clock()
        stmts = [("UPDATE sessions SET last_seen = ? WHERE id_hash = ? AND last_seen < ?", (t, k, t)) for k, t in seen.items()]
        stmts += [("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (t, k)) for k, t in used.items()]
        stmts.append(("DELETE FROM sessions WHERE last_seen < ? OR created_at < ? OR user_name IN "
                      "(SELECT name FROM users WHERE disabled)",
                      (now - int(self.settings.session_idle * US), now - int(self.settings.session_max * US))))
        try:
            self.store.execute(stmts)
        except Exception:
            for k, t in seen.items():  # kept for the next flush
                self._seen[k] = max(t, self._seen.get(k, 0))
            for k, t in used.items():
                self._used[k] = max(t, self._used.get(k, 0))
            raise
        return len(stmts)

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
        hit = self._cached(key, now)
        if hit is not None:
            return hit[0]
        rows = self.store.fetch("SELECT t.secret_hash, t.name, t.owner, t.scopes, t.expires_at, t.revoked_at, t.device, u.role, u.disabled "
                                "FROM api_tokens t JOIN users u ON u.name = t.owner WHERE t.id = ?", (tid,))
        p = None
        if rows:
            sh, name, owner, scopes, expires, revoked, device, role, disabled = rows[0]
            if hmac.compare_digest(sh, _h(secret)) and revoked is None and expires > now and not disabled:
                perms = frozenset(Permission(s) for s in scopes.split(",") if s) & grants(role)  # never above the owner's role today
                actor = Actor(ActorKind.device, device) if device else Actor(ActorKind.token, f"{owner}/{name}")
                p = Principal(actor, Role(role), perms, "token", device=device)
                self._used[tid] = now
        self._remember(key, now, p)
        return p
