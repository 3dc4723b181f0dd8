"""/api/maturity: alarm-system performance, evidence, the maturity model and assessments (HTML and PDF reports),
attestations, the skills matrix, the improvement backlog and phased rollouts. Thin: every route calls the
maturity service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from plantguard.api.deps import ActorDep, ServicesDep
from plantguard.api.errors import Unavailable
from plantguard.api.permissions import principal_of, require
from plantguard.domain.roles import Permission
from plantguard.timeutil import parse_time

router = APIRouter(prefix="/maturity", tags=["maturity"])
READ = [require(Permission.READ)]
ASSESS = [require(Permission.MATURITY_ASSESS)]
IMPROVE = [require(Permission.IMPROVEMENT_EDIT)]
Id = Annotated[int, Path(ge=1, le=2**62)]
Name = Annotated[str, Path(min_length=1, max_length=100)]
Time = Annotated[str | None, Query(max_length=64, description="ISO 8601, epoch ms, or now-7d")]
Text = Annotated[str, Field(max_length=2000)]


def _svc(services):
    svc = services.maturity
    if svc is None:
        raise Unavailable("the maturity capability is not installed")
    return svc


def _role(request: Request, services) -> str:
    if services.accounts is None:  # a platform without access control: every caller may do everything
        return "admin"
    p = principal_of(request)
    return p.role.value if p.role is not None else "viewer"


def _when(v: str | None, services, name: str) -> int | None:
    return None if v is None else parse_time(v, services.clock(), name)


@router.get("/alarm-performance", dependencies=READ)
def alarm_performance(svc: ServicesDep, start: Time = None, end: Time = None,
                      position: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    """ISA-18.2 / EEMUA 191 alarm-system figures per operator position over the period (default: the configured
    period ending now), each against its target band, and the bad actors with the rule each one breaks."""
    s = _when(start, svc, "start")
    e = _when(end, svc, "end")
    return _svc(svc).alarm_report(s, e, position=position)


@router.get("/model", dependencies=READ)
def model(svc: ServicesDep) -> list[dict[str, Any]]:
    """The practice areas, their levels and the indicator each level requires."""
    from plantguard.maturity.service import areas

    _svc(svc)
    return areas()


@router.get("/evidence", dependencies=READ)
def evidence(svc: ServicesDep, period: Annotated[float | None, Query(gt=0, le=3 * 366 * 86400, description="seconds")] = None) -> list[dict[str, Any]]:
    """Every evidence item now: what was measured, over which scope and period, or why it is missing."""
    return _svc(svc).evidence(period_s=period)


@router.get("", dependencies=READ)
def assessment_now(svc: ServicesDep, site: Annotated[str | None, Query(max_length=100)] = None) -> dict[str, Any]:
    """A live assessment (not stored): the level of each practice area, the gap to the target, the next actions."""
    return _svc(svc).assess(site=site)


class AssessBody(BaseModel):
    site: str | None = Field(None, max_length=100)
    sync_actions: bool = Field(True, description="add improvement actions for the practice areas below target")


@router.post("/assessments", dependencies=ASSESS, status_code=201)
def record(body: AssessBody, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    m = _svc(svc)
    a = m.record_assessment(actor, site=body.site)
    if body.sync_actions:
        m.sync_actions(actor, assessment=a)
    return a


@router.get("/assessments", dependencies=READ)
def assessments(svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return _svc(svc).assessments(limit)


@router.get("/assessments/{aid}", dependencies=READ)
def assessment(aid: Id, svc: ServicesDep) -> dict[str, Any]:
    return _svc(svc).assessment(aid)


@router.get("/report", dependencies=READ, response_class=Response,
            responses={200: {"content": {"text/html": {}, "application/pdf": {}}}})
def report(svc: ServicesDep, format: Literal["html", "pdf"] = "html", assessment: Annotated[int | None, Query(ge=1, le=2**62)] = None,
           site: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    """The self-contained assessment report (charts inline): a stored assessment, or one made now."""
    body = _svc(svc).report(assessment_id=assessment, site=site, fmt=format)
    media = "application/pdf" if format == "pdf" else "text/html; charset=utf-8"
    return Response(body, media_type=media, headers={"Content-Disposition": f'inline; filename="maturity.{format}"'})


class Attest(BaseModel):
    indicator: str = Field(min_length=1, max_length=100)
    statement: Text = Field(min_length=1)
    signer: str | None = Field(None, max_length=200, description="the person signing (default: the caller)")
    expires_at: Annotated[str | None, Field(max_length=64, description="ISO 8601, epoch ms or now+180d")] = None


@router.get("/attestations", dependencies=READ)
def attestations(svc: ServicesDep) -> list[dict[str, Any]]:
    return _svc(svc).attestations()


@router.post("/attestations", dependencies=ASSESS, status_code=201)
def attest(body: Attest, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return _svc(svc).attest(body.indicator, body.statement, actor, expires_at=_when(body.expires_at, svc, "expires_at"),
                            signer=body.signer)


class TrainingRecord(BaseModel):
    person: str = Field(min_length=1, max_length=100)
    skill: str = Field(min_length=1, max_length=100)
    completed_at: Annotated[str | None, Field(max_length=64)] = None
    expires_at: Annotated[str | None, Field(max_length=64)] = None


@router.get("/training", dependencies=READ)
def training(svc: ServicesDep) -> dict[str, Any]:
    """The skills matrix: each person, the skills their role requires, current, expired or missing."""
    m = _svc(svc)
    return {**m.training_status(), "records": m.training_records()[-1000:]}


@router.post("/training", dependencies=ASSESS, status_code=201)
def add_training(body: TrainingRecord, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return _svc(svc).record_training(body.person, body.skill, actor, completed_at=_when(body.completed_at, svc, "completed_at"),
                                     expires_at=_when(body.expires_at, svc, "expires_at"))


class KpiRef(BaseModel):
    kpi: str = Field(min_length=1, max_length=200)
    scope: dict[str, list[Annotated[str, Field(max_length=300)]]] = Field(default_factory=dict)
    better: Literal["higher", "lower"] | None = None
    min_samples: int = Field(50, ge=2, le=10_000_000)


class NewAction(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    detail: Text = ""
    owner: str = Field("", max_length=200)
    due_at: Annotated[str | None, Field(max_length=64)] = None
    practice: str | None = Field(None, max_length=40)
    kpi: KpiRef | None = Field(None, description="the KPI and scope whose before and after verify the action")


class ActionUpdate(BaseModel):
    state: Literal["open", "in_progress", "done", "cancelled"] | None = None
    owner: str | None = Field(None, max_length=200)
    due_at: Annotated[str | None, Field(max_length=64)] = None
    note: Text = ""


class Verify(BaseModel):
    before_s: float | None = Field(None, gt=0, le=3 * 366 * 86400)
    after_s: float | None = Field(None, gt=0, le=3 * 366 * 86400)
    bucket_s: float = Field(3600, ge=1, le=86400 * 7)


@router.get("/actions", dependencies=READ)
def actions(svc: ServicesDep, state: Literal["open", "in_progress", "done", "verified", "cancelled"] | None = None) -> list[dict[str, Any]]:
    return _svc(svc).actions(state=state)


@router.post("/actions", dependencies=IMPROVE, status_code=201)
def add_action(body: NewAction, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return _svc(svc).add_action(actor, title=body.title, detail=body.detail, owner=body.owner, practice=body.practice,
                                due_at=_when(body.due_at, svc, "due_at"), kpi=body.kpi.model_dump() if body.kpi else None)


@router.patch("/actions/{aid}", dependencies=IMPROVE)
def update_action(aid: Id, body: ActionUpdate, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return _svc(svc).update_action(aid, actor, state=body.state, owner=body.owner, due_at=_when(body.due_at, svc, "due_at"),
                                   note=body.note)


@router.post("/actions/{aid}/verify", dependencies=ASSESS)
def verify_action(aid: Id, body: Verify, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """The action's KPI before and after it was done, judged with the gate's statistics."""
    return _svc(svc).verify_action(aid, actor, before_s=body.before_s, after_s=body.after_s, bucket_s=body.bucket_s)


@router.post("/actions/sync", dependencies=ASSESS)
def sync_actions(svc: ServicesDep, actor: ActorDep) -> list[dict[str, Any]]:
    """Adds the actions the sources call for (reviews, high findings, failed gates, bad actors), each once."""
    m = _svc(svc)
    return m.sync_actions(actor, alarm_report=m.alarm_report())


@router.get("/rollouts", dependencies=READ)
def rollouts(svc: ServicesDep) -> list[dict[str, Any]]:
    return _svc(svc).rollouts()


@router.get("/rollouts/{name}", dependencies=READ)
def rollout(name: Name, svc: ServicesDep) -> dict[str, Any]:
    return _svc(svc).rollout(name)


@router.get("/rollouts/{name}/evaluations", dependencies=READ)
def evaluations(name: Name, svc: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return _svc(svc).evaluations(name, limit)


@router.post("/rollouts/{name}/start", dependencies=ASSESS)
def start(name: Name, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """Starts the first phase: its devices go to shadow mode (when the phase says so)."""
    return _svc(svc).start_rollout(name, actor)


@router.post("/rollouts/{name}/evaluate", dependencies=ASSESS)
def evaluate(name: Name, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """The current phase's gate now, recorded with its evidence; inconclusive or no-go pauses the rollout."""
    return _svc(svc).evaluate(name, actor)


class Promote(BaseModel):
    note: Text = ""
    accept_marginal: bool = Field(False, description="an admin accepts a marginal score (with a note)")


@router.post("/rollouts/{name}/promote", dependencies=ASSESS)
def promote(name: Name, body: Promote, request: Request, svc: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """Ends the current phase after a passed gate: its devices go live and the next phase starts."""
    return _svc(svc).promote(name, actor, role=_role(request, svc), note=body.note, accept_marginal=body.accept_marginal)
