"""Deny by default. Every route names the permission it needs with `require(...)` (on the route or on its
router); `create_app` refuses to build an app in which a route names none, and the permission of each operation
is in the OpenAPI document as `x-permission` (tests/test_access.py calls every operation as every role).

Credentials, in this order: `Authorization: Bearer pgt_...` (an API token) or the `pg_session` cookie (a
dashboard session). A state-changing request made with a session cookie must carry the session's CSRF token in
`X-CSRF-Token` (or the form field `csrf`): a page on another site cannot forge it.
"""

from __future__ import annotations

import hmac
import re

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from plantguard.errors import Forbidden, Unauthenticated
from plantguard.domain.roles import ANONYMOUS, Permission, Principal

SESSION_COOKIE = "pg_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# the stronger of two permissions a route names (a router's READ and the route's own MODEL_WRITE)
RANK = {p: i for i, p in enumerate([Permission.PUBLIC, Permission.READ, Permission.INGEST, Permission.ALARMS_OPERATE,
                                    Permission.INCIDENTS_RESPOND, Permission.IMPROVEMENT_EDIT, Permission.SECURITY_READ,
                                    Permission.AUDIT_READ, Permission.PLAYBOOKS_RUN, Permission.MATURITY_ASSESS,
                                    Permission.MODEL_WRITE, Permission.SECURITY_OPERATE,
                                    Permission.CONTINUITY_EDIT, Permission.USERS_MANAGE])}


def principal_of(request: Request) -> Principal:
    """Who sent this request (once per request)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    p = credential(request)
    request.state.principal = p
    return p


def credential(request: Request, *, touch: bool = True) -> Principal:
    """The request's credential checked now: the bearer token, else the session cookie (ANONYMOUS without
    either, or on a platform without the security capability). The one check every route and the live stream's
    periodic re-check use; `touch` False: a re-check does not extend the session."""
    accounts = request.app.state.services.accounts
    if accounts is None:
        return ANONYMOUS
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthenticated("use Authorization: Bearer <token>")
        p = accounts.authenticate_token(cred.strip())
        if p is None:
            raise Unauthenticated("this token is unknown, expired or revoked")
        return p
    return accounts.session(request.cookies.get(SESSION_COOKIE), touch=touch) or ANONYMOUS


async def _csrf_ok(request: Request, p: Principal) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        sent = (await request.form()).get("csrf")
    return bool(sent) and p.csrf is not None and hmac.compare_digest(str(sent), p.csrf)


def require(permission: Permission):
    """The dependency that lets a request through only with this permission."""

    async def check(request: Request) -> Principal:
        p = principal_of(request)
        if permission is Permission.PUBLIC:
            return p
        if not p.can(permission):
            if p.via == "none":
                raise Unauthenticated("log in, or send an API token (Authorization: Bearer ...)")
            raise Forbidden(f"{p.actor} ({p.role.value if p.role else 'no role'}) lacks the permission {permission.value!r}")
        if p.via == "session" and request.method not in SAFE_METHODS and not await _csrf_ok(request, p):
            raise Forbidden(f"missing or wrong {CSRF_HEADER}: a state-changing request from the dashboard carries its CSRF token")
        return p

    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)


def declared(route: APIRoute) -> Permission | None:
    """The permission a route names (the strongest one, over its own and its router's dependencies)."""
    found: list[Permission] = []
    stack = list(route.dependant.dependencies)
    while stack:
        d = stack.pop()
        perm = getattr(d.call, "permission", None)
        if isinstance(perm, Permission):
            found.append(perm)
        stack.extend(d.dependencies)
    return max(found, key=RANK.__getitem__) if found else None


def check_routes(routers: list[tuple[str, object]]) -> dict[tuple[str, str], Permission]:
    """(method, path as in the OpenAPI document) -> permission for every route of these (prefix, router) pairs,
    read before they are included in the app; raises RuntimeError naming the routes that declare none."""
    out, missing = {}, []
    for prefix, router in routers:
        for r in router.routes:
            if not isinstance(r, APIRoute):
                continue
            perm = declared(r)
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", prefix + r.path)
            for m in r.methods:
                if perm is None:
                    missing.append(f"{m} {path}")
                else:
                    out[(m, path)] = perm
    if missing:
        raise RuntimeError("routes without a declared permission (deny by default): " + ", ".join(sorted(missing)))
    return out
