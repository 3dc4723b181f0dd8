"""Login, logout, who am I; users and API tokens (admins); the audit log (engineers and admins); the dashboard's
login page. Thin: everything is in plantguard.security."""

from __future__ import annotations

from plantguard.services import Services

import hmac


from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from plantguard.api.deps import ActorDep, ServicesDep
from plantguard.api.errors import ERROR_RESPONSES
from plantguard.api.permissions import CSRF_HEADER, SESSION_COOKIE, principal_of, require
from plantguard.errors import TooManyAttempts, Unauthenticated, Unavailable
from plantguard.security.accounts import User
from plantguard.domain.roles import Permission, Role

router = APIRouter(tags=["security"])
pages = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "pg_login_csrf"
MAX_TEXT = 1024


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(max_length=64)
    password: str = Field(max_length=MAX_TEXT)
    totp: str | None = Field(None, max_length=16)


class MePublic(BaseModel):
    authenticated: bool
    actor: str | None = None
    role: str | None = None
    permissions: list[str] = []
    csrf: str | None = None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    role: Role
    password: str = Field(max_length=MAX_TEXT)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(None, max_length=MAX_TEXT)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Field(max_length=64)
    name: str = Field(max_length=64)
    scopes: list[Permission] | None = Field(None, max_length=16)
    days: int = Field(90, ge=1, le=3650)
    device: str | None = Field(None, max_length=512, description="a device path, or the asset/line/area/site a gateway serves: the token may only send readings under it")


class TokenPublic(BaseModel):
    id: str
    name: str
    owner: str
    role: Role
    scopes: list[str]
    created_at: int
    expires_at: int
    revoked_at: int | None = None
    last_used_at: int | None = None
    device: str | None = None
    token: str | None = Field(None, description="the secret, shown once when the token is created")


def _accounts(svc):
    acc = svc.accounts
    if acc is None:
        raise Unavailable("security is not set up on this platform")
    return acc


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _set_session(response: Response, request: Request, secret: str, svc) -> None:
    s = _accounts(svc).settings
    response.set_cookie(SESSION_COOKIE, secret, max_age=int(s.session_max), httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")


def _me(p) -> dict:
    if p.via == "none":
        return {"authenticated": False}
    return {"authenticated": True, "actor": str(p.actor), "role": p.role.value if p.role else None,
            "permissions": sorted(x.value for x in p.permissions), "csrf": p.csrf}


# -- sessions -------------------------------------------------------------------------------------------------------
@router.post("/auth/login", response_model=MePublic, responses={**ERROR_RESPONSES, 401: {}, 429: {}},
             dependencies=[require(Permission.PUBLIC)])
def login(body: LoginBody, request: Request, svc: ServicesDep) -> Any:
    """Starts a dashboard session (an HttpOnly cookie); the answer carries the CSRF token state-changing
    requests must send in X-CSRF-Token."""
    secret, p = _accounts(svc).login(body.user, body.password, totp=body.totp, address=_address(request))
    resp = JSONResponse(_me(p))
    _set_session(resp, request, secret, svc)
    return resp


@router.post("/auth/logout", status_code=204, response_class=Response, dependencies=[require(Permission.PUBLIC)])
def logout(request: Request, svc: ServicesDep) -> Response:
    _end_session(request, svc, request.headers.get(CSRF_HEADER) or "")
    resp = Response(status_code=204)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


def _end_session(request: Request, svc, csrf_sent: str) -> None:
    """Ends the request's session when it carries that session's CSRF token (another site cannot log you out)."""
    p = principal_of(request)
    if p.via == "session" and p.csrf and hmac.compare_digest(csrf_sent, p.csrf):
        _accounts(svc).logout(request.cookies.get(SESSION_COOKIE))


@router.get("/auth/me", response_model=MePublic, dependencies=[require(Permission.PUBLIC)])
def me(request: Request) -> Any:
    return _me(principal_of(request))


# -- users (admins) -----------------------------------------------------------------------------------------------------
ADMIN = [require(Permission.USERS_MANAGE)]


@router.get("/users", response_model=list[User], dependencies=ADMIN)
def list_users(svc: ServicesDep) -> Any:
    return _accounts(svc).users()


@router.post("/users", response_model=User, status_code=201, responses=ERROR_RESPONSES, dependencies=ADMIN)
def create_user(body: UserCreate, svc: ServicesDep, actor: ActorDep) -> Any:
    return _accounts(svc).create_user(body.name, body.role, body.password, actor)


@router.patch("/users/{name}", response_model=User, responses=ERROR_RESPONSES, dependencies=ADMIN)
def update_user(name: str, body: UserUpdate, svc: ServicesDep, actor: ActorDep) -> Any:
    acc = _accounts(svc)
    if body.password is not None:
        acc.set_password(name, body.password, actor)
    if body.role is not None:
        acc.set_role(name, body.role, actor)
    if body.disabled is not None:
        acc.set_disabled(name, body.disabled, actor)
    return acc.user(name)


# -- tokens (admins) ------------------------------------------------------------------------------------------------
def _token(t, secret: str | None = None) -> dict:
    return {**{k: getattr(t, k) for k in ("id", "name", "owner", "role", "created_at", "expires_at", "revoked_at",
                                          "last_used_at", "device")}, "scopes": list(t.scopes), "token": secret}


@router.get("/tokens", response_model=list[TokenPublic], dependencies=ADMIN)
def list_tokens(svc: ServicesDep, owner: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    return [_token(t) for t in _accounts(svc).tokens(owner)]


@router.post("/tokens", response_model=TokenPublic, status_code=201, responses=ERROR_RESPONSES, dependencies=ADMIN)
def create_token(body: TokenCreate, svc: ServicesDep, actor: ActorDep) -> Any:
    secret, t = _accounts(svc).create_token(body.owner, body.name, scopes=[s.value for s in body.scopes] if body.scopes else None,
                                                 days=body.days, device=body.device, actor=actor)
    return _token(t, secret)


@router.delete("/tokens/{token_id}", response_model=TokenPublic, responses=ERROR_RESPONSES, dependencies=ADMIN)
def revoke_token(token_id: Annotated[str, Field(max_length=32)], svc: ServicesDep, actor: ActorDep) -> Any:
    return _token(_accounts(svc).revoke_token(token_id, actor))


# -- the audit log ----------------------------------------------------------------------------------------------------
class AuditEntryPublic(BaseModel):
    seq: int
    at: int
    actor: str
    action: str
    target: str
    result: str
    detail: dict


@router.get("/audit", response_model=list[AuditEntryPublic], dependencies=[require(Permission.AUDIT_READ)])
def audit_entries(svc: ServicesDep, since: Annotated[int, Query(ge=0, le=2**62)] = 0,
                  limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Any:
    """Entries from sequence number `since`, oldest first."""
    return [e.as_dict() for e in svc.audit.entries(since, limit)]


@router.get("/audit/verify", dependencies=[require(Permission.AUDIT_READ)])
def audit_verify(svc: ServicesDep) -> Any:
    """Checks the stored log against its witness file now (as `plantguard audit verify` does offline)."""
    return svc.audit.verify_now().__dict__


# -- the login page ---------------------------------------------------------------------------------------------------
@pages.get("/login", response_class=HTMLResponse, dependencies=[require(Permission.PUBLIC)])
def login_page(request: Request, svc: ServicesDep, link: Annotated[str | None, Query(max_length=128)] = None,
               next: Annotated[str, Query(max_length=2048)] = "/") -> Response:
    """The login form; `?link=pgl_...` redeems a one-time login link (the demo prints one) instead."""
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    if link:
        try:
            secret, _p = _accounts(svc).redeem_link(link, address=_address(request))
        except Unauthenticated as e:
            return _login_form(request, svc, target, str(e), status_code=401)
        resp = RedirectResponse(target, status_code=303)
        _set_session(resp, request, secret, svc)
        return resp
    return _login_form(request, svc, target)


@pages.post("/login", response_class=HTMLResponse, dependencies=[require(Permission.PUBLIC)])
def login_form_post(request: Request, svc: ServicesDep, user: Annotated[str, Form(max_length=64)],
                    password: Annotated[str, Form(max_length=MAX_TEXT)], csrf: Annotated[str, Form(max_length=128)],
                    totp: Annotated[str | None, Form(max_length=16)] = None,
                    next: Annotated[str, Form(max_length=2048)] = "/") -> Response:
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not cookie or not hmac.compare_digest(cookie, csrf):  # login CSRF: the form must come from this site
        return _login_form(request, svc, target, "the form expired: try again", status_code=400)
    try:
        secret, _p = _accounts(svc).login(user, password, totp=totp or None, address=_address(request))
    except TooManyAttempts as e:
        return _login_form(request, svc, target, f"{e} (in {e.retry_after} s)", status_code=429)
    except Unauthenticated as e:  # the form again, with the reason (a page, not an API answer)
        return _login_form(request, svc, target, str(e))
    resp = RedirectResponse(target, status_code=303)
    _set_session(resp, request, secret, svc)  # always a new session id: a planted cookie is replaced
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@pages.post("/logout", dependencies=[require(Permission.PUBLIC)])
async def logout_form(request: Request, svc: ServicesDep) -> Response:
    """The dashboard's log-out button (a form with the session's CSRF token)."""
    form = await request.form()
    _end_session(request, svc, str(form.get("csrf") or ""))
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


def _login_form(request: Request, svc, target: str, error: str | None = None, status_code: int = 200) -> Response:
    import secrets

    from plantguard.web.routes import templates, plant_name

    token = secrets.token_urlsafe(24)
    resp = templates.TemplateResponse(request, "login.html", {"error": error, "next": target, "csrf": token,
                                                              "plant_name": plant_name(svc)}, status_code=status_code)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", path="/login")
    return resp



