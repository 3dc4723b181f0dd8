"""POST /api/ingest: readings as JSON, through the same pipeline as every other source.

The body is read as bytes and parsed by ingest.parse (columnar, no pydantic object per reading). The response
is sent once the accepted readings are durably stored.
"""

from __future__ import annotations

from plantguard.services import Services

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from plantguard.domain.readings import IngestResult
from plantguard.ingest.parse import parse_payload

from plantguard.api.deps import ServicesDep, body_schema, read_body
from plantguard.api.errors import ERROR_RESPONSES, ErrorPublic
from plantguard.api.timeparams import iso
from plantguard.api.permissions import principal_of, require
from plantguard.domain.roles import Permission

router = APIRouter(tags=["ingest"], dependencies=[require(Permission.INGEST)])

SUBMIT_TIMEOUT_S = 10.0  # default wait for room in a full ingest queue before 503 + Retry-After


class ReadingIn(BaseModel):
    point: str = Field(description="the tag, e.g. site/area/line/asset/device/point (short key: p)")
    ts: int | float | str = Field(description="epoch milliseconds or ISO 8601 with offset (short key: t)")
    value: float | bool = Field(description="short key: v")
    quality: str | int | None = Field(None, description="good/uncertain/bad or 0/1/2 (short key: q); default good")
    source_ts: int | float | str | None = Field(None, description="the device's own timestamp, if any (short key: st)")


class IngestPayload(BaseModel):
    """Also accepted: a bare JSON list of readings."""

    readings: list[ReadingIn]


class ReadingError(BaseModel):
    point: str | None
    ts: str | None
    reason: str


class IngestResultPublic(BaseModel):
    accepted: int = Field(description="readings stored")
    rejected: int = Field(description="readings refused (kept in the dead letters with their reason)")
    duplicates: int = Field(description="readings already stored (same point and timestamp): ignored")
    errors: list[ReadingError] = Field(description="the first rejected readings with their reasons")


async def ingest_bytes(svc: Services, raw: bytes, submit_timeout_s: float = SUBMIT_TIMEOUT_S,
                       device: str | None = None) -> IngestResult:
    def parse_and_submit():
        batch, dead = parse_payload(raw, source="http")
        return svc.telemetry.submit(batch, dead, timeout=submit_timeout_s, device=device)

    # parsing a large payload and waiting for room in the queue both block: run them in a worker thread,
    # then await the writer's verdict without holding a thread
    future = await run_in_threadpool(parse_and_submit)
    return await asyncio.wrap_future(future)


@router.post(
    "/ingest",
    response_model=IngestResultPublic,
    openapi_extra=body_schema(IngestPayload),
    responses={**ERROR_RESPONSES, 413: {"model": ErrorPublic, "description": "payload above ingest.max_payload_bytes"}},
)
async def ingest_readings(request: Request, svc: ServicesDep) -> Any:
    """Stores readings. Readings that cannot be accepted are rejected one by one with a reason (and kept in the
    dead letters) while the others are stored; resending the same readings only counts duplicates."""
    raw = await read_body(request, svc.model.current().ingest.max_payload_bytes)
    device = principal_of(request).device  # a device token: only that device's points
    res = await ingest_bytes(svc, raw, request.app.state.submit_timeout_s, device=device)
    return {
        "accepted": res.accepted,
        "rejected": res.rejected,
        "duplicates": res.duplicates,
        "errors": [{"point": e.point, "ts": iso(e.ts), "reason": e.reason} for e in res.errors],
    }
