"""Telemetry queries: raw readings, downsampled buckets, and the newest reading of many points at once.

Time parameters accept ISO 8601 with an offset, epoch milliseconds, or now / now-1h / now-30d (see timeparams).
Series responses are serialised with orjson straight from the numpy columns: a raw query may return up to a
million rows and a pydantic object per row would dominate its cost.
"""

from __future__ import annotations

from plantguard.services import Services

from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, Field

from plantguard.domain.readings import Quality
from plantguard.errors import InvalidInput, NotFound
from plantguard.services.telemetry import Series
from plantguard.timeutil import parse_duration_us

from plantguard.api.deps import ServicesDep
from plantguard.api.errors import ERROR_RESPONSES
from plantguard.api.timeparams import iso, iso_array, ms, ms_array, time_range
from plantguard.api.permissions import require
from plantguard.domain.roles import Permission

router = APIRouter(prefix="/telemetry", tags=["telemetry"], dependencies=[require(Permission.READ)])

QUALITY_NAMES = [q.name for q in sorted(Quality)]
MAX_LATEST_POINTS = 100_000
DEFAULT_BUCKETS = 500

TIME_DOC = "ISO 8601 with offset, epoch milliseconds, or now / now-1h / now-30d"
PointQ = Annotated[str, Query(description="the point's tag")]
StartQ = Annotated[str | None, Query(description=f"inclusive; {TIME_DOC}; default now-1h")]
EndQ = Annotated[str | None, Query(description=f"exclusive; {TIME_DOC}; default now")]


class ReadingPublic(BaseModel):
    ts: str = Field(description="ISO 8601, UTC")
    ts_ms: int | float = Field(description="epoch milliseconds")
    value: float
    quality: str = Field(description="good, uncertain or bad")


class RawSeriesPublic(BaseModel):
    point: str
    start: str
    end: str
    data: list[ReadingPublic]
    count: int


class BucketPublic(BaseModel):
    ts: str = Field(description="bucket start, ISO 8601, UTC")
    ts_ms: int | float
    value: float
    count: int = Field(description="readings aggregated into the bucket")


class DownsampledSeriesPublic(BaseModel):
    point: str
    start: str
    end: str
    agg: str
    tier: str = Field(description="where the buckets were computed from: raw, 1m or 1h rollups")
    width_ms: int | float = Field(description="effective bucket width (rollup tiers round it to whole tier buckets)")
    data: list[BucketPublic]
    count: int


class LatestPublic(BaseModel):
    point: str
    ts: str | None = Field(description="null when the point has no reading yet")
    ts_ms: int | float | None
    value: float | None
    quality: str | None


class LatestListPublic(BaseModel):
    data: list[LatestPublic]
    count: int


def _json(doc: dict) -> Response:
    return Response(orjson.dumps(doc), media_type="application/json")


def _rows(s: Series, *, with_count: bool = False) -> list[dict]:
    ts, tms, val = iso_array(s.ts), ms_array(s.ts), s.value.tolist()
    if with_count:
        cnt = s.count.tolist() if s.count is not None else [0] * len(ts)
        return [{"ts": a, "ts_ms": b, "value": v, "count": c} for a, b, v, c in zip(ts, tms, val, cnt)]
    q = s.quality if s.quality is not None else np.zeros(len(ts), np.uint8)
    names = np.array(QUALITY_NAMES, dtype=object)[np.minimum(q, len(QUALITY_NAMES) - 1)].tolist()
    return [{"ts": a, "ts_ms": b, "value": v, "quality": n} for a, b, v, n in zip(ts, tms, val, names)]


def latest_of(svc: Services, points: list[str]) -> list[dict]:
    if len(points) > MAX_LATEST_POINTS:
        raise InvalidInput(f"at most {MAX_LATEST_POINTS} points per request")
    unknown = svc.telemetry.unknown_points(points)
    if unknown:  # a typo must not look like a point that never reported
        raise NotFound(f"unknown point(s): {', '.join(map(repr, unknown[:10]))}" + (" ..." if len(unknown) > 10 else ""))
    found = svc.telemetry.latest(points)
    out = []
    for p in points:
        r = found.get(p)
        if r is None:
            out.append({"point": p, "ts": None, "ts_ms": None, "value": None, "quality": None})
        else:
            q = r["quality"]
            out.append({"point": p, "ts": iso(r["ts"]), "ts_ms": ms(r["ts"]), "value": r["value"],
                        "quality": QUALITY_NAMES[q] if q < len(QUALITY_NAMES) else str(q)})
    return out


@router.get("/raw", response_model=RawSeriesPublic, responses=ERROR_RESPONSES)
def query_raw(
    svc: ServicesDep,
    point: PointQ,
    start: StartQ = None,
    end: EndQ = None,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 10_000,
) -> Any:
    """Raw readings of one point, oldest first."""
    s, e = time_range(start, end, svc.clock())
    series = svc.telemetry.query_raw(point, s, e, limit)
    rows = _rows(series)
    return _json({"point": point, "start": iso(s), "end": iso(e), "data": rows, "count": len(rows)})


@router.get("/downsample", response_model=DownsampledSeriesPublic, responses=ERROR_RESPONSES)
def query_downsample(
    svc: ServicesDep,
    point: PointQ,
    start: StartQ = None,
    end: EndQ = None,
    buckets: Annotated[int | None, Query(ge=1, description=f"number of buckets over the range (default {DEFAULT_BUCKETS})")] = None,
    width: Annotated[str | None, Query(description="bucket width instead of a count: '5m', '1h' or seconds")] = None,
    agg: Literal["avg", "min", "max", "sum", "count", "last"] = "avg",
) -> Any:
    """One aggregated value per non-empty bucket; served from the coarsest rollup tier that fits."""
    if buckets is not None and width is not None:
        raise InvalidInput("give either buckets or width, not both")
    s, e = time_range(start, end, svc.clock())
    width_us = None
    if width is not None:
        try:
            width_us = parse_duration_us(width)
        except ValueError as exc:
            raise InvalidInput(f"width: {exc}") from None
    elif buckets is None:
        buckets = DEFAULT_BUCKETS
    series, tier, eff = svc.telemetry.query_downsample(point, s, e, buckets=buckets, width=width_us, agg=agg)
    rows = _rows(series, with_count=True)
    return _json({"point": point, "start": iso(s), "end": iso(e), "agg": agg, "tier": tier, "width_ms": ms(eff),
                  "data": rows, "count": len(rows)})


@router.get("/latest", response_model=LatestListPublic, responses=ERROR_RESPONSES)
def get_latest(svc: ServicesDep, points: Annotated[str, Query(description="comma-separated tags")]) -> Any:
    """The newest reading of each point (POST the list instead when it is long)."""
    rows = latest_of(svc, [p.strip() for p in points.split(",") if p.strip()])
    return {"data": rows, "count": len(rows)}


@router.post("/latest", response_model=LatestListPublic, responses=ERROR_RESPONSES)
def get_latest_bulk(svc: ServicesDep, points: Annotated[list[str], Body(description="a JSON list of tags")]) -> Any:
    """The newest reading of each point in the list."""
    rows = latest_of(svc, points)
    return {"data": rows, "count": len(rows)}
