"""/api/continuity: business services with live status, the dependency graph and what-if, incidents, playbook
runs and their approvals, drill reports. Thin: every route calls the continuity service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from plantguard.api.deps import ActorDep, JsonObject, ServicesDep
from plantguard.api.errors import Unavailable
from plantguard.api.permissions import principal_of, require
from plantguard.domain.roles import Permission
from plantguard.errors import ConfigError, ConfigProblem, Forbidden

router = APIRouter(prefix="/continuity", tags=["continuity"])
READ = [require(Permission.READ)]
RESPOND = [require(Permission.INCIDENTS_RESPOND)]
RUN = [require(Permission.PLAYBOOKS_RUN)]
EDIT = [require(Permission.CONTINUITY_EDIT)]
Id = Annotated[int, Path(ge=1, le=2**62)]


def _svc(services):
    svc = services.continuity
    if svc is None:
        raise Unavailable("the continuity capability is not installed")
    return svc


class WhatIf(BaseModel):
    nodes: list[Annotated[str, Field(max_length=300)]] = Field(min_length=1, max_length=1000)
    at_s: dict[Annotated[str, Field(max_length=300)], Annotated[float, Field(ge=-1e9, le=1e9)]] = Field(
        default_factory=dict, description="node -> seconds from now when it fails (default now)")


class IncidentAction(BaseModel):
    action: Literal["acknowledge", "assign", "mitigate", "resolve", "started"]
    assignee: str | None = Field(None, max_length=200)
    note: str = Field("", max_length=2000)
    started_at: int | None = Field(None, ge=0, le=2**62, description="epoch microseconds (action 'started')")


class CorrectiveAction(BaseModel):
    action: str = Field(min_length=1, max_length=500)
    owner: str = Field("", max_length=200)
    due: str = Field("", max_length=40)
    done: bool = False


class Review(BaseModel):
    summary: str = Field("", max_length=5000)
    root_cause: str = Field("", max_length=2000)
    corrective_actions: list[CorrectiveAction] = Field(default_factory=list, max_length=100)


class StartRun(BaseModel):
    playbook: str = Field(min_length=1, max_length=64)
    incident: int | None = Field(None, ge=1, le=2**62)


class Decision(BaseModel):
    approve: bool
    note: str = Field("", max_length=500)


@router.get("/services", dependencies=READ)
def services(svc: ServicesDep) -> list[dict[str, Any]]:
    """Each business service: its business impact analysis, live status from its dependencies, when it is at
    risk and when its RTO would be breached."""
    return _svc(svc).services_status()


@router.get("/services/{sid}/estimates", dependencies=READ)
def estimates(sid: Annotated[str, Path(max_length=300)], svc: ServicesDep) -> dict[str, Any]:
    """Estimated RTO and RPO from the graph, each with the path that proves it, and the single points of failure."""
    return _svc(svc).estimates(sid)


@router.get("/graph", dependencies=READ)
def graph(svc: ServicesDep) -> dict[str, Any]:
    return _svc(svc).describe()


@router.put("/graph", dependencies=EDIT)
def put_graph(body: JsonObject, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """Replaces the graph (the `continuity:` section's services and nodes); refused by field path on a cycle,
    a dangling reference or a rule that cannot be met, with nothing changed."""
    s = _svc(svc)
    s.replace_graph(body, actor)
    return s.describe()


@router.post("/what-if", dependencies=READ)
def what_if(body: WhatIf, svc: ServicesDep) -> dict[str, Any]:
    """The cascade if these nodes fail: which processes and services degrade or go down, from when, at what cost."""
    return _svc(svc).what_if(body.nodes, body.at_s)


@router.get("/incidents", dependencies=READ)
def incidents(svc: ServicesDep, open: bool = False, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    return [i.as_dict() for i in _svc(svc).incidents(open_only=open, limit=limit)]


@router.get("/incidents/metrics", dependencies=READ)
def incident_metrics(svc: ServicesDep) -> dict[str, Any]:
    """MTTD, MTTA, MTTM and MTTR over the recorded incidents (definitions in docs/continuity.md)."""
    return _svc(svc).incident_metrics()


@router.get("/incidents/{iid}", dependencies=READ)
def incident(iid: Id, svc: ServicesDep) -> dict[str, Any]:
    return _svc(svc).incident(iid).as_dict()


@router.post("/incidents/{iid}", dependencies=RESPOND)
def act(iid: Id, body: IncidentAction, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return _svc(svc).act(iid, body.action, actor, assignee=body.assignee, note=body.note, started_at=body.started_at).as_dict()


@router.post("/incidents/{iid}/review", dependencies=RESPOND)
def review(iid: Id, body: Review, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """The post-incident review: summary, root cause, corrective actions; the timeline is filled in."""
    return _svc(svc).act(iid, "review", actor, review=body.model_dump()).as_dict()


@router.get("/playbooks", dependencies=READ)
def playbooks(svc: ServicesDep) -> list[dict[str, Any]]:
    return [p.model_dump(mode="json") for p in _svc(svc).playbooks()]


@router.get("/runs", dependencies=READ)
def runs(svc: ServicesDep) -> list[dict[str, Any]]:
    return [r.as_dict() for r in _svc(svc).runs()[:500]]


@router.post("/runs", dependencies=RUN, status_code=201)
def start_run(body: StartRun, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return _svc(svc).start_playbook(body.playbook, actor, body.incident).as_dict()


@router.get("/runs/{rid}", dependencies=READ)
def run(rid: Id, svc: ServicesDep) -> dict[str, Any]:
    return _svc(svc).run(rid).as_dict()


@router.post("/runs/{rid}/steps/{step}", dependencies=RUN)
def decide(rid: Id, step: Annotated[str, Path(max_length=64)], body: Decision, request: Request, svc: ServicesDep,
           actor: ActorDep) -> dict[str, Any]:
    """Approves or rejects a step waiting for approval; the step names the role it needs."""
    p = principal_of(request)
    role = p.role.value if p.role is not None else "viewer"
    try:
        return _svc(svc).decide(rid, step, approve=body.approve, actor=actor, role=role, note=body.note).as_dict()
    except PermissionError as e:
        raise Forbidden(str(e)) from None


@router.post("/runs/{rid}/cancel", dependencies=RUN)
def cancel(rid: Id, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return _svc(svc).cancel(rid, actor).as_dict()


@router.get("/work-orders", dependencies=READ)
def work_orders(svc: ServicesDep) -> list[dict[str, Any]]:
    return _svc(svc).work_orders()


@router.get("/drills", dependencies=READ)
def drills(svc: ServicesDep) -> list[dict[str, Any]]:
    """Drill journals recorded on this platform (newest first)."""
    return _svc(svc).drill_reports()


@router.get("/backups", dependencies=EDIT)
def backups(svc: ServicesDep) -> list[dict[str, Any]]:
    return _svc(svc).backups()


@router.post("/backups", dependencies=EDIT, status_code=201)
def backup(svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """An online backup of the store under <data_dir>/backups, with the RPO it achieved; `plantguard restore`
    brings it back into an empty store."""
    return _svc(svc).backup(actor)
