"""Alarms (ISA-18.2 states): list, inspect, and the operator actions acknowledge, shelve and unshelve.

Alarm ids are '<tag>:<condition>' and contain slashes, hence the ':path' parameters; the routes with a suffix
(/events, /ack, ...) are declared before the plain one so the suffix is never read as part of an id.
"""

from __future__ import annotations

from plantguard.services import Services

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from plantguard.domain.actor import Actor
from plantguard.domain.alarms import AlarmRecord, AlarmState
from plantguard.errors import Forbidden, InvalidInput
from plantguard.timeutil import parse_duration_us

from plantguard.api.deps import ActorDep, ServicesDep
from plantguard.api.permissions import require
from plantguard.domain.roles import Permission
from plantguard.api.errors import ERROR_RESPONSES, ErrorPublic, Unavailable
from plantguard.api.timeparams import iso
from plantguard.api.views import alarm_public

router = APIRouter(prefix="/alarms", tags=["alarms"])
READ = [require(Permission.READ)]  # per route: a router-wide READ would also bind the operator-only routes
OPERATE = [require(Permission.ALARMS_OPERATE)]

ALARM_ERRORS: dict[int | str, dict] = {**ERROR_RESPONSES, 409: {"model": ErrorPublic, "description": "the action does not apply in the alarm's state"}}
AlarmId = Annotated[str, Path(description="'<tag>:<condition>', e.g. s1/a1/l1/pump1/plc1/p0:HI")]
MAX_EVENTS = 10_000


class AlarmPublic(BaseModel):
    id: str
    tag: str
    condition: str = Field(description="HIHI, HI, LO, LOLO, ROC, STALE or OFFLINE")
    priority: str
    state: AlarmState
    active: bool = Field(description="whether the condition is present now")
    value: float | None
    limit: float | None
    message: str
    raised_at: str | None
    returned_at: str | None
    acked_by: str | None
    acked_at: str | None
    shelved_by: str | None
    shelved_at: str | None
    shelved_until: str | None
    shelve_reason: str | None
    updated_at: str | None


class AlarmsPublic(BaseModel):
    data: list[AlarmPublic]
    count: int


class AlarmEventPublic(BaseModel):
    alarm_id: str
    at: str
    event: str = Field(description="raised, acknowledged, returned, cleared, shelved, unshelved, ...")
    actor: str | None
    note: str | None
    value: float | None


class AlarmEventsPublic(BaseModel):
    data: list[AlarmEventPublic]
    count: int


class AlarmAck(BaseModel):
    user: str | None = Field(None, description="optional; when given it must be the authenticated user")
    note: str | None = None


class AlarmShelve(BaseModel):
    user: str | None = Field(None, description="optional; when given it must be the authenticated user")
    duration: str | float = Field(description="'30m', '2h' or seconds")
    reason: str


class AlarmUnshelve(BaseModel):
    user: str | None = Field(None, description="optional; when given it must be the authenticated user")


def _as(actor: Actor, named: str | None) -> Actor:
    """The authenticated actor. A body that names someone else is refused: nobody acts under another's name."""
    if named is not None and named.strip() != actor.name:
        raise Forbidden(f"you are {actor}; an action cannot be recorded under the name {named!r}")
    return actor


def _alarms(svc: Services):
    return svc.alarms


def alarm_events(svc: Services, alarm_id: str, limit: int) -> list[dict]:
    return [{**ev.__dict__, "at": iso(ev.at)} for ev in _alarms(svc).history(alarm_id, limit)]


def shelve(svc: Services, alarm_id: str, body: AlarmShelve, actor: Actor) -> AlarmRecord:
    try:
        duration_us = parse_duration_us(body.duration)
    except ValueError as e:
        raise InvalidInput(f"duration: {e}") from None
    return _alarms(svc).shelve(alarm_id, actor, duration_us, body.reason)


@router.get("", response_model=AlarmsPublic, responses=ALARM_ERRORS, dependencies=READ)
def list_alarms(
    svc: ServicesDep,
    state: AlarmState | None = None,
    priority: Literal["low", "medium", "high", "urgent"] | None = None,
    active: bool | None = None,
    prefix: Annotated[str | None, Query(description="only alarms of tags starting with this")] = None,
) -> Any:
    """Alarms, most urgent first, then newest first."""
    if not _alarms(svc).enabled:
        raise Unavailable("the alarm engine is disabled on this platform")
    rows = [alarm_public(r) for r in _alarms(svc).list(state=state, priority=priority, active=active, tag_prefix=prefix)]
    return {"data": rows, "count": len(rows)}


@router.get("/{alarm_id:path}/events", response_model=AlarmEventsPublic, responses=ALARM_ERRORS, dependencies=READ)
def list_alarm_events(svc: ServicesDep, alarm_id: AlarmId,
                      limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 1000) -> Any:
    """The alarm's history, newest first."""
    rows = alarm_events(svc, alarm_id, limit)
    return {"data": rows, "count": len(rows)}


@router.post("/{alarm_id:path}/ack", response_model=AlarmPublic, responses=ALARM_ERRORS, dependencies=OPERATE)
def acknowledge_alarm(svc: ServicesDep, alarm_id: AlarmId, body: AlarmAck, actor: ActorDep) -> Any:
    """Acknowledges an unacknowledged (or returned-to-normal) alarm."""
    return alarm_public(_alarms(svc).acknowledge(alarm_id, _as(actor, body.user), body.note))


@router.post("/{alarm_id:path}/shelve", response_model=AlarmPublic, responses=ALARM_ERRORS, dependencies=OPERATE)
def shelve_alarm(svc: ServicesDep, alarm_id: AlarmId, body: AlarmShelve, actor: ActorDep) -> Any:
    """Suppresses an alarm for a while (it unshelves itself when the time is up)."""
    return alarm_public(shelve(svc, alarm_id, body, _as(actor, body.user)))


@router.post("/{alarm_id:path}/unshelve", response_model=AlarmPublic, responses=ALARM_ERRORS, dependencies=OPERATE)
def unshelve_alarm(svc: ServicesDep, alarm_id: AlarmId, body: AlarmUnshelve, actor: ActorDep) -> Any:
    """Ends a shelve early."""
    return alarm_public(_alarms(svc).unshelve(alarm_id, _as(actor, body.user)))


@router.get("/{alarm_id:path}", response_model=AlarmPublic, responses=ALARM_ERRORS, dependencies=READ)
def get_alarm(svc: ServicesDep, alarm_id: AlarmId) -> Any:
    return alarm_public(_alarms(svc).get(alarm_id))
