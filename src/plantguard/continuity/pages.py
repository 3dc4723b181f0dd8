"""The continuity page of the dashboard: business services with live status and time to breach, the dependency
graph with what-if (click a node, see its blast radius), incidents with their timelines, playbook runs with their
approvals, drill reports. Actions go through /api/continuity with the session's CSRF token (continuity.js)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from plantguard.api.permissions import principal_of, require
from plantguard.domain.roles import Permission
from plantguard.errors import NotFound

router = APIRouter(include_in_schema=False, dependencies=[require(Permission.READ)])


def _hours(s):
    return None if s is None else f"{s / 3600:.1f} h"


@router.get("/continuity", response_class=HTMLResponse)
def continuity_page(request: Request, incident: int | None = Query(None, ge=1, le=2**62)) -> HTMLResponse:
    from plantguard.web.routes import not_found, render

    svc = request.app.state.services.continuity
    if svc is None:
        return not_found(request, "the continuity capability is not installed")
    who = principal_of(request)
    detail = None
    if incident is not None:
        try:
            detail = svc.incident(incident).as_dict()
        except NotFound as e:
            return not_found(request, str(e))
    g = svc.describe()
    return render(request, "continuity.html", "continuity", services=svc.services_status(),
                  incidents=[i.as_dict() for i in svc.incidents(limit=50)], detail=detail,
                  runs=[r.as_dict() for r in svc.runs()[:30]], drills=svc.drill_reports(20),
                  nodes=g["nodes"][:2000], node_count=g["count"], problems=g["problems"], metrics=svc.incident_metrics(),
                  work_orders=svc.work_orders(20), hours=_hours,
                  can_respond=who.can(Permission.INCIDENTS_RESPOND), can_run=who.can(Permission.PLAYBOOKS_RUN),
                  role=who.role.value if who.role else "none")
