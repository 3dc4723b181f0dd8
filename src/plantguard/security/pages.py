"""The security page's actions (triage, quarantine, release) and the admins' user and token page: plain HTML
forms, each carrying the session's CSRF token, answered by the page itself with what happened (no redirect: a
token's secret is shown once, in the answer to the form that made it). Thin: plantguard.security."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from plantguard.api.permissions import principal_of, require
from plantguard.errors import PlantguardError
from plantguard.domain.roles import Permission, Role

router = APIRouter(include_in_schema=False, dependencies=[require(Permission.READ)])
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
MAX_FIELD = 500


def _render():
    from plantguard.web.routes import render

    return render


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v)[:MAX_FIELD] for k, v in form.items() if isinstance(v, str)}


def _status(e: PlantguardError) -> int:
    from plantguard.api.errors import status_of

    return status_of(e)


# -- the security page -----------------------------------------------------------------------------------------------
def security_context(request: Request) -> dict[str, Any]:
    svc = request.app.state.services
    who = principal_of(request)
    report = svc.posture.run()
    findings = [{**asdict(f), "evidence_text": json.dumps(f.evidence, default=str)[:400]} for f in report.findings[:500]]
    facts = svc.posture.last_facts  # gathered by the run above, not a second time
    devices = [{"path": f.path, "links": ", ".join(sorted({f"{x['type']} ({x['name']})" for x in f.links})) or "—",
                "product": " / ".join(str(f.inventory.get(k)) for k in ("vendor", "product", "firmware") if f.inventory.get(k)) or "—",
                "owner": f.inventory.get("owner") or "—", "criticality": f.inventory.get("criticality") or "—",
                "keys": sum(1 for c in f.credentials if c.get("revoked_at") is None)} for f in facts[:2000]]
    audit = svc.audit.verify_now() if who.can(Permission.AUDIT_READ) else None
    counts = report.by_severity()
    risks = svc.risks.register(report)[:10]  # reading the page records nothing
    triage = svc.posture.triage()
    events = [{"device": e.device, "rule": e.rule, "at": e.at, "message": e.message,
               "evidence_text": json.dumps(e.evidence, default=str)[:400], "muted": (e.rule, e.device) in triage}
              for e in svc.posture.events(limit=100)]
    quarantined = svc.quarantine.list()
    held = {q.device for q in quarantined}
    return {"report": report, "findings": findings, "devices": devices, "audit": audit, "risks": risks, "events": events,
            "severities": [(s, counts[s]) for s in SEVERITY_ORDER], "quarantined": quarantined,
            "quarantinable": [d["path"] for d in devices if d["path"] not in held],
            "can_security": who.can(Permission.SECURITY_OPERATE), "me": str(who.actor)}


@router.get("/security", response_class=HTMLResponse, dependencies=[require(Permission.SECURITY_READ)])
def security_page_route(request: Request) -> HTMLResponse:
    return security_page(request)


def security_page(request: Request, *, message: str | None = None, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    return _render()(request, "security.html", "security", status_code=status_code, message=message, error=error,
                     **security_context(request))


async def _security_action(request: Request, do) -> HTMLResponse:
    f = await _form(request)
    svc = request.app.state.services
    actor = principal_of(request).actor
    try:
        message = do(svc, actor, f)
    except PlantguardError as e:
        return security_page(request, error=str(e), status_code=_status(e))
    return security_page(request, message=message)


@router.post("/security/triage", response_class=HTMLResponse, dependencies=[require(Permission.SECURITY_OPERATE)])
async def triage_form(request: Request) -> HTMLResponse:
    """Mute (noise) or accept (a known risk) a finding or a behavioural rule for a device, with a reason."""
    def do(svc, actor, f):
        svc.posture.decide(f.get("check", ""), f.get("device", ""), f.get("decision", ""), f.get("reason", ""), actor)
        verb = {"mute": "muted", "accept": "accepted", "reopen": "reopened"}.get(f.get("decision", ""), f.get("decision", ""))
        return f"{f.get('check')} on {f.get('device')}: {verb}"
    return await _security_action(request, do)


@router.post("/security/quarantine", response_class=HTMLResponse, dependencies=[require(Permission.SECURITY_OPERATE)])
async def quarantine_form(request: Request) -> HTMLResponse:
    def do(svc, actor, f):
        r = svc.quarantine.quarantine(f.get("device", ""), actor, f.get("reason", ""))
        return f"{r.device} quarantined: its readings are held aside, its credentials suspended"
    return await _security_action(request, do)


@router.post("/security/release", response_class=HTMLResponse, dependencies=[require(Permission.SECURITY_OPERATE)])
async def release_form(request: Request) -> HTMLResponse:
    """Four eyes: the user who quarantined a device cannot release it."""
    def do(svc, actor, f):
        out = svc.quarantine.release(f.get("device", ""), actor, f.get("reason", ""), f.get("disposition", ""))
        return f"{out['device']} released: {out['held']} held reading(s), {out['admitted']} admitted"
    return await _security_action(request, do)


# -- users and tokens (admins) ---------------------------------------------------------------------------------------
def users_page(request: Request, *, message: str | None = None, error: str | None = None, secret: str | None = None,
               status_code: int = 200) -> HTMLResponse:
    svc = request.app.state.services
    acc = svc.accounts
    now = svc.clock()
    tokens = [{**{k: getattr(t, k) for k in ("id", "name", "owner", "created_at", "expires_at", "revoked_at", "last_used_at", "device")},
               "role": t.role.value, "scopes": ", ".join(t.scopes),
               "state": "revoked" if t.revoked_at else "expired" if t.expires_at <= now else "live"} for t in acc.tokens()]
    return _render()(request, "users.html", "users", status_code=status_code, message=message, error=error, secret=secret,
                     users=acc.users(), tokens=tokens, roles=[r.value for r in Role],
                     scopes=[p.value for p in Permission if p is not Permission.PUBLIC], me=principal_of(request).actor.name)


async def _users_action(request: Request, do) -> HTMLResponse:
    f = await _form(request)
    svc = request.app.state.services
    actor = principal_of(request).actor
    try:
        message, secret = do(svc.accounts, actor, f, await request.form())
    except PlantguardError as e:
        return users_page(request, error=str(e), status_code=_status(e))
    return users_page(request, message=message, secret=secret)


@router.get("/admin/users", response_class=HTMLResponse, dependencies=[require(Permission.USERS_MANAGE)])
def users_get(request: Request) -> HTMLResponse:
    return users_page(request)


@router.post("/admin/users", response_class=HTMLResponse, dependencies=[require(Permission.USERS_MANAGE)])
async def users_post(request: Request) -> HTMLResponse:
    """One form per action: create a user, change a role, disable or enable, set a password."""
    def do(acc, actor, f, _raw):
        action, name = f.get("action"), f.get("name", "")
        if action == "create":
            u = acc.create_user(name, f.get("role", ""), f.get("password", ""), actor)
            return f"user {u.name} created ({u.role.value})", None
        if action == "role":
            u = acc.set_role(name, f.get("role", ""), actor)
            return f"{u.name} is now {u.role.value}", None
        if action in ("disable", "enable"):
            if action == "disable" and name == actor.name:
                from plantguard.errors import InvalidInput

                raise InvalidInput("you cannot disable your own account (another admin can)")
            acc.set_disabled(name, action == "disable", actor)
            return f"{name} {action}d", None
        if action == "password":
            acc.set_password(name, f.get("password", ""), actor)
            return f"password of {name} changed", None
        from plantguard.errors import InvalidInput

        raise InvalidInput("unknown action")
    return await _users_action(request, do)


@router.post("/admin/tokens", response_class=HTMLResponse, dependencies=[require(Permission.USERS_MANAGE)])
async def tokens_post(request: Request) -> HTMLResponse:
    """Create (the secret is shown once, in this answer) or revoke an API token."""
    def do(acc, actor, f, raw):
        from plantguard.errors import InvalidInput

        if f.get("action") == "revoke":
            t = acc.revoke_token(f.get("id", ""), actor)
            return f"token {t.owner}/{t.name} revoked", None
        if f.get("action") != "create":
            raise InvalidInput("unknown action")
        scopes = [str(s) for s in raw.getlist("scopes")][:20] or None
        try:
            days = int(f.get("days") or 90)
        except ValueError:
            raise InvalidInput("days is a whole number") from None
        secret, t = acc.create_token(f.get("owner", ""), f.get("token_name", ""), scopes=scopes, days=days,
                                     device=f.get("device") or None, actor=actor)
        return f"token {t.owner}/{t.name} created, valid {days} days: copy its secret now, it is not shown again", secret
    return await _users_action(request, do)
