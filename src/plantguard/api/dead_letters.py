"""GET /api/dead-letters: readings and payloads that were refused, newest first, with the reason."""

from __future__ import annotations

from plantguard.services import Services

from dataclasses import asdict

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field


from plantguard.api.deps import ServicesDep
from plantguard.api.errors import ERROR_RESPONSES
from plantguard.api.timeparams import iso, ms, parse_time
from plantguard.api.permissions import require
from plantguard.domain.roles import Permission

router = APIRouter(tags=["dead-letters"], dependencies=[require(Permission.READ)])


class DeadLetterPublic(BaseModel):
    id: int
    received_at: str
    received_at_ms: int | float
    source: str | None = Field(description="http, mqtt, csv, ...")
    point: str | None
    ts: str | None = Field(description="the reading's timestamp, when it could be read")
    ts_ms: int | float | None
    value: str | None
    reason: str = Field(description="why, with the detail (which reading, which value)")
    code: str = Field(description="the reason's code, one of a closed set (unknown_point, out_of_range, malformed, ...): what metrics label and the data-quality page groups by")
    payload: str | None = Field(description="a fragment of what was sent, for readings that could not be parsed")


class DeadLettersPublic(BaseModel):
    data: list[DeadLetterPublic]
    count: int


def recent_dead_letters(svc: Services, limit: int, since: str | None, source: str | None) -> list[dict]:
    since_us = parse_time(since, svc.clock(), "since") if since else None
    rows = [asdict(r) for r in svc.telemetry.dead_letters(limit=limit, since=since_us, source=source)]
    return [
        {**r, "code": r.get("code") or "other", "received_at": iso(r["received_at"]), "received_at_ms": ms(r["received_at"]), "ts": iso(r["ts"]), "ts_ms": ms(r["ts"])}
        for r in rows
    ]


@router.get("/dead-letters", response_model=DeadLettersPublic, responses=ERROR_RESPONSES)
def list_dead_letters(
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    since: Annotated[str | None, Query(description="received at or after; ISO 8601, epoch ms or now-1h")] = None,
    source: Annotated[str | None, Query(description="only from this source (http, mqtt, ...)")] = None,
) -> Any:
    """Refused readings, newest first."""
    rows = recent_dead_letters(svc, limit, since, source)
    return {"data": rows, "count": len(rows)}
