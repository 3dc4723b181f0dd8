"""The maturity pages of the dashboard: the assessment (levels against target, trend, evidence), alarm-system
performance with its bad actors, rollouts (phases, gates with their KPI checks, approvals), the improvement
backlog and the skills matrix. Commands go through /api/maturity with the session's CSRF token (maturity.js)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from plantguard.api.permissions import principal_of, require
from plantguard.domain.roles import Permission
from plantguard.errors import PlantguardError

router = APIRouter(include_in_schema=False, dependencies=[require(Permission.READ)])
VIEWS = (("assessment", "/maturity", "Assessment"), ("alarms", "/maturity/alarms", "Alarm performance"),
         ("rollouts", "/maturity/rollouts", "Rollouts"), ("improvement", "/maturity/improvement", "Improvement"),
         ("skills", "/maturity/skills", "Skills"))


def _page(request: Request, view: str, **data) -> HTMLResponse:
    from plantguard.web.routes import not_found, render

    svc = request.app.state.services.maturity
    if svc is None:
        return not_found(request, "the maturity capability is not installed")
    who = principal_of(request)
    return render(request, "maturity.html", "maturity", view=view, views=VIEWS,
                  can_assess=who.can(Permission.MATURITY_ASSESS), can_improve=who.can(Permission.IMPROVEMENT_EDIT), **data)


@router.get("/maturity", response_class=HTMLResponse)
def assessment_page(request: Request, site: str | None = Query(None, max_length=100)) -> HTMLResponse:
    from plantguard.maturity.report import _bars, _trend
    from plantguard.maturity.model import ATTESTABLE

    svc = request.app.state.services.maturity
    if svc is None:
        return _page(request, "assessment")
    try:
        a = svc.assess(site=site)
    except PlantguardError as e:
        from plantguard.web.routes import not_found

        return not_found(request, str(e))
    history = list(reversed(svc.assessments(50)))
    return _page(request, "assessment", a=a, history=history[-20:], bars=Markup(_bars(a["levels"])), trend=Markup(_trend(history)),
                 attestable=ATTESTABLE, attestations=svc.attestations()[-50:])


@router.get("/maturity/alarms", response_class=HTMLResponse)
def alarms_page(request: Request, days: float = Query(7, gt=0, le=400)) -> HTMLResponse:
    svc = request.app.state.services.maturity
    if svc is None:
        return _page(request, "alarms")
    now = svc.clock()
    return _page(request, "alarms", r=svc.alarm_report(now - int(days * 86400e6), now), days=days)


@router.get("/maturity/rollouts", response_class=HTMLResponse)
def rollouts_page(request: Request) -> HTMLResponse:
    svc = request.app.state.services.maturity
    if svc is None:
        return _page(request, "rollouts")
    plans = svc.rollouts()
    evals = {p["name"]: svc.evaluations(p["name"], 5) for p in plans}
    return _page(request, "rollouts", plans=plans, evals=evals)


@router.get("/maturity/improvement", response_class=HTMLResponse)
def improvement_page(request: Request) -> HTMLResponse:
    svc = request.app.state.services.maturity
    if svc is None:
        return _page(request, "improvement")
    return _page(request, "improvement", actions=list(reversed(svc.actions()))[:500])


@router.get("/maturity/skills", response_class=HTMLResponse)
def skills_page(request: Request) -> HTMLResponse:
    svc = request.app.state.services.maturity
    if svc is None:
        return _page(request, "skills")
    return _page(request, "skills", training=svc.training_status(), records=svc.training_records()[-200:])
