"""Analytics results: SPC status, limits, capability and violations; anomaly scores; remaining useful life;
OEE per line, shift and day with the six big losses; maintenance and quality KPIs.

Series and events come from what the analytics processor stored; status comes from its live state. Times in
responses are ISO 8601 UTC with epoch milliseconds alongside, as in /telemetry.
"""

from __future__ import annotations

from plantguard.services import Services

from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from plantguard.api.deps import ServicesDep
from plantguard.api.errors import ERROR_RESPONSES
from plantguard.api.timeparams import iso, iso_array, ms, ms_array, time_range
from plantguard.domain.analytics import KINDS
from plantguard.services._base import _plain
from plantguard.api.permissions import require
from plantguard.domain.roles import Permission

router = APIRouter(prefix="/analytics", tags=["analytics"], dependencies=[require(Permission.READ)])

TIME_DOC = "ISO 8601 with offset, epoch milliseconds, or now / now-1h / now-30d"
StartQ = Annotated[str | None, Query(description=f"inclusive; {TIME_DOC}")]
EndQ = Annotated[str | None, Query(description=f"exclusive; {TIME_DOC}; default now")]


def _json(doc: Any) -> Response:
    return Response(orjson.dumps(_plain(doc)), media_type="application/json")


class AnalyticsEventPublic(BaseModel):
    id: int | None
    ts: str
    ts_ms: int | float
    kind: str = Field(description="spc, anomaly or rul")
    key: str = Field(description="spc/<tag>, anomaly/<tag or asset>, rul/<asset>")
    rule: str = Field(description="nelson-1..8, moving_range, ewma, cusum_upper/lower, anomaly-start/end, rul-alert/clear")
    message: str
    detail: dict


class AnalyticsEventListPublic(BaseModel):
    data: list[AnalyticsEventPublic]
    count: int


class SeriesPointPublic(BaseModel):
    ts: str
    ts_ms: int | float
    value: float
    lower: float | None
    upper: float | None


class DerivedSeriesPublic(BaseModel):
    key: str
    start: str
    end: str
    data: list[SeriesPointPublic]
    count: int


def _event(e) -> dict:
    return {"id": e.id, "ts": iso(e.ts), "ts_ms": ms(e.ts), "kind": e.kind, "key": e.key, "rule": e.rule,
            "message": e.message, "detail": e.detail}


@router.get("", responses=ERROR_RESPONSES)
def analytics_overview(svc: ServicesDep) -> Any:
    """Live state of every configured analytic: SPC status and limits per point, anomaly state per point and
    asset, and the latest remaining-useful-life estimate per asset."""
    return _json(svc.analytics.live())


@router.get("/events", response_model=AnalyticsEventListPublic, responses=ERROR_RESPONSES)
def list_analytics_events(
    svc: ServicesDep,
    kind: Annotated[Literal[KINDS] | None, Query(description="spc, anomaly or rul")] = None,  # type: ignore[valid-type]
    key: Annotated[str | None, Query(description="a result key, or a prefix ending at a path boundary (e.g. anomaly/site/area/line/asset)")] = None,
    start: StartQ = None,
    end: EndQ = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> Any:
    """Rule violations, anomaly starts and ends, predictive alerts: newest first."""
    s, e = time_range(start, end, svc.clock(), default_start="now-30d")
    rows = [_event(x) for x in svc.analytics.events(kind=kind, key=key, since=s, until=e, limit=limit)]
    return _json({"data": rows, "count": len(rows)})


@router.get("/series", response_model=DerivedSeriesPublic, responses=ERROR_RESPONSES)
def get_analytics_series(
    svc: ServicesDep,
    key: Annotated[str, Query(description="ewma/<tag>, anomaly/<tag or asset>, rul/<asset>")],
    start: StartQ = None,
    end: EndQ = None,
    buckets: Annotated[int | None, Query(ge=1, le=20_000, description="aggregate into this many buckets (default: the stored rows)")] = None,
    agg: Literal["max", "min", "avg", "last"] = "max",
) -> Any:
    """A derived series: anomaly scores (0..1), EWMA statistics, RUL estimates in seconds with their interval."""
    s, e = time_range(start, end, svc.clock(), default_start="now-24h")
    d = svc.analytics.series(key, s, e, buckets=buckets, agg=agg)

    def nz(a):
        return [None if not np.isfinite(x) else float(x) for x in a]

    rows = [{"ts": a, "ts_ms": b, "value": v, "lower": lo, "upper": up}
            for a, b, v, lo, up in zip(iso_array(d["ts"]), ms_array(d["ts"]), d["value"].tolist(), nz(d["lower"]), nz(d["upper"]))]
    return _json({"key": key, "start": iso(s), "end": iso(e), "data": rows, "count": len(rows)})


@router.get("/spc", responses=ERROR_RESPONSES)
def get_spc(
    svc: ServicesDep,
    point: Annotated[str, Query(description="the point's tag")],
    start: StartQ = None,
    end: EndQ = None,
) -> Any:
    """A point's SPC: status, control limits (individuals, EWMA, CUSUM), process capability (Cp, Cpk, Pp, Ppk
    with confidence intervals) over the window against its spec limits, and the violations in the window."""
    s, e = time_range(start, end, svc.clock(), default_start="now-24h")
    out = svc.analytics.spc_report(point, s, e)
    out["violations"] = [{**v, "ts": iso(v["ts"]), "ts_ms": ms(v["ts"])} for v in out["violations"]]
    out.update(start=iso(s), end=iso(e))
    return _json(out)


@router.get("/rul", responses=ERROR_RESPONSES)
def get_rul(svc: ServicesDep, asset: Annotated[str, Query(description="asset path site/area/line/asset")]) -> Any:
    """The asset's latest remaining-useful-life estimate (seconds, with its interval) and whether the predictive
    maintenance alert is on."""
    a = svc.analytics.live()["assets"].get(asset)
    if a is None or "rul" not in a:
        from plantguard.errors import NotFound

        raise NotFound(f"asset {asset!r} has no remaining-useful-life analytics (analytics.rul in the plant model)")
    r = dict(a["rul"] or {"state": "insufficient_data"})
    if "ts" in r:
        r["ts"] = iso(r["ts"])
    return _json({"asset": asset, **r})


@router.get("/oee", responses=ERROR_RESPONSES)
def get_oee(
    svc: ServicesDep,
    line: Annotated[str, Query(description="line path site/area/line")],
    start: StartQ = None,
    end: EndQ = None,
    by: Literal["shift", "day", "hour", "total"] = "shift",
) -> Any:
    """OEE = availability x performance x quality per period, with the six big losses in seconds; planned stops
    excluded; periods follow the site's shift calendar and time zone."""
    s, e = time_range(start, end, svc.clock(), default_start="now-24h")
    out = svc.performance.oee(line, s, e, by)
    for r in out["periods"] + [out["total"]]:
        r["start"], r["end"] = iso(r["start_us"]), iso(r["end_us"])
    return _json(out)


@router.get("/kpi", responses=ERROR_RESPONSES)
def get_kpi(
    svc: ServicesDep,
    asset: Annotated[str, Query(description="asset path site/area/line/asset")],
    start: StartQ = None,
    end: EndQ = None,
) -> Any:
    """Maintenance KPIs (MTBF, MTTR, availability; MTBF as a lower bound while nothing failed) and quality KPIs
    (defect rate, first-pass yield) of one machine."""
    s, e = time_range(start, end, svc.clock(), default_start="now-30d")
    return _json({**svc.performance.maintenance_kpis(asset, s, e), "start": iso(s), "end": iso(e)})
