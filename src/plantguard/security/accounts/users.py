"""Users, their roles and passwords, and the first admin."""

from __future__ import annotations

import secrets

from plantguard.domain.actor import Actor
from plantguard.domain.roles import Permission, Principal, Role
from plantguard.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from plantguard.security.accounts._base import NAME_RE, User, _role
from plantguard.security.passwords import hash_password, password_problem


class Users:
    """Users, their roles and passwords, and the first admin (a part of Accounts; AccountsBase sets up its state)."""

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
