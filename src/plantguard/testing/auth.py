"""Credentials for tests: a user per role and an API token for it, made through the platform's own accounts
service (nothing is bypassed: requests carry a real token and pass the same permission checks)."""

from __future__ import annotations

from plantguard.domain.actor import Actor
from plantguard.errors import Conflict

PASSWORD = "a test password, not a real one"


def _accounts(owner):
    """The accounts service of a platform (tests hold one) or of its services (what an app is given)."""
    return getattr(owner, "services", owner).accounts


def user(platform, role: str = "admin", name: str | None = None) -> str:
    name = name or f"{role}-tests"
    try:
        _accounts(platform).create_user(name, role, PASSWORD, Actor.system("tests"))
    except Conflict:
        pass
    return name


def auth_headers(platform, role: str = "admin", *, name: str | None = None, scopes: list[str] | None = None,
                 device: str | None = None) -> dict[str, str]:
    owner = user(platform, role, name)
    acc = _accounts(platform)
    secret, _ = acc.create_token(owner, f"t{len(acc.tokens()) + 1}", scopes=scopes, days=30, device=device,
                                 actor=Actor.system("tests"))
    return {"Authorization": f"Bearer {secret}"}


def login(client, platform, role: str = "admin", name: str | None = None) -> str:
    """A dashboard session on this client (httpx or TestClient): the cookie, and the CSRF header set."""
    who = user(platform, role, name)
    r = client.post("/api/auth/login", json={"user": who, "password": PASSWORD})
    r.raise_for_status()
    client.headers["X-CSRF-Token"] = r.json()["csrf"]
    return who
