"""GET and POST /api/shift-notes/{line}: thin, over the service."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from pydantic import BaseModel, Field

from plantguard.api.deps import ActorDep, ServicesDep
from plantguard.api.permissions import require
from plantguard.domain.roles import Permission

router = APIRouter(tags=["shift notes"])


class NoteBody(BaseModel):
    text: str = Field(max_length=20_000)


@router.get("/shift-notes/{line:path}", dependencies=[require(Permission.READ)])
def list_notes(line: str, svc: ServicesDep) -> list[dict]:
    return [asdict(n) for n in svc.of("shift_notes").list(line)]


@router.post("/shift-notes/{line:path}", status_code=201, dependencies=[require(Permission.ALARMS_OPERATE)])
def add_note(line: str, body: NoteBody, svc: ServicesDep, actor: ActorDep) -> dict:
    return asdict(svc.of("shift_notes").add(line, body.text, actor))
