"""The dashboard's HTML pages: overview, asset, alarms, devices, data quality.

Pages are rendered on the server from the same Platform methods the API uses; static/js/live.js then keeps them
current from the live stream (live.py). Every page reads the platform in memory except OEE and the dead letters,
which are short store queries.
"""

from __future__ import annotations

from plantguard.services import Services

import logging
from dataclasses import asdict
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup

from plantguard.domain.alarms import PRIORITY_RANK, AlarmState
from plantguard.errors import NotFound, PlantguardError
from plantguard.domain.fields import us_of


from plantguard.domain.readings import REJECT_CODES
from plantguard.api.permissions import require
from plantguard.domain.roles import Permission

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
router = APIRouter(include_in_schema=False, dependencies=[require(Permission.READ)])

NAV = [("overview", "/", "Overview"), ("alarms", "/alarms", "Alarms"), ("devices", "/devices", "Devices"),
       ("quality", "/quality", "Data quality"), ("continuity", "/continuity", "Continuity"),
       ("maturity", "/maturity", "Maturity"), ("security", "/security", "Security"), ("users", "/admin/users", "Users")]
NAV_NEEDS = {"security": Permission.SECURITY_READ, "users": Permission.USERS_MANAGE}  # links a role would be refused are not shown
STATE_WORDS = {
    "unacknowledged": "Active, unacknowledged",
    "acknowledged": "Active, acknowledged",
    "returned_to_normal": "Returned to normal, unacknowledged",
    "shelved": "Shelved",
    "normal": "Normal",
}
PRIORITIES = sorted(PRIORITY_RANK, key=lambda p: -PRIORITY_RANK[p])
UNIT_SYMBOLS = {"degC": "°C", "degF": "°F", "m3/h": "m³/h", "m3": "m³"}
OEE_WINDOW_US = 3600 * 1_000_000
MAX_TEXT = 200


# -- formatting -----------------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - the model validates zones; a stale store model must not break a page
        return ZoneInfo("UTC")


def local_time(ts_us: int | None, tz: str, with_date: bool = True) -> str:
    if ts_us is None:
        return "—"
    dt = datetime.fromtimestamp(ts_us / 1e6, timezone.utc).astimezone(_zone(tz))
    return dt.strftime("%Y-%m-%d %H:%M:%S %Z" if with_date else "%H:%M:%S %Z")


def iso_time(ts_us: int | None) -> str:
    return "" if ts_us is None else datetime.fromtimestamp(ts_us / 1e6, timezone.utc).isoformat().replace("+00:00", "Z")


def unit_symbol(unit: str | None) -> str:
    return UNIT_SYMBOLS.get(unit or "", unit or "")


def fmt_number(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, int):
        return f"{v:,}".replace(",", " ")
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != f:
        return "—"
    if abs(f) >= 1000:
        return f"{f:,.0f}".replace(",", " ")
    return f"{f:.3f}".rstrip("0").rstrip(".") or "0"


def fmt_value(v: Any, unit: str | None) -> str:
    u = unit_symbol(unit)
    return f"{fmt_number(v)} {u}".rstrip() if v is not None else "—"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f} %"


def fmt_count(v: Any, noun: str) -> str:
    """'1 reading', '2 readings', '1,204 readings'."""
    return f"{fmt_number(v)} {noun}{'' if v == 1 else 's'}"


@pass_context
def _localtime_filter(ctx, ts_us: int | None) -> Markup:
    """`{{ ts | localtime }}`: a <time> in the page's time zone, with its ISO form for the scripts."""
    return Markup('<time datetime="{0}" data-ts-iso="{0}">{1}</time>').format(iso_time(ts_us), local_time(ts_us, ctx.get("tz") or "UTC"))


templates.env.filters.update(number=fmt_number, value=fmt_value, unit=unit_symbol, duration=fmt_duration, pct=pct, count=fmt_count,
                             localtime=_localtime_filter)


# -- shared page context ------------------------------------------------------------------------------------------
def site_timezones(svc: Services) -> dict[str, str]:
    return {s.id: s.timezone for s in svc.model.current().sites}


def tz_of(svc: Services, path: str) -> str:
    """The time zone of the site a tag, asset or device path belongs to (the first site's for anything else)."""
    zones = site_timezones(svc)
    return zones.get(path.split("/", 1)[0]) or plant_timezone(svc)


def plant_timezone(svc: Services) -> str:
    return svc.model.current().sites[0].timezone if svc.model.current().sites else "UTC"


def plant_name(svc: Services) -> str:
    sites = svc.model.current().sites
    if not sites:
        return "plantguard"
    return sites[0].name or sites[0].id if len(sites) == 1 else f"{sites[0].name or sites[0].id} (+{len(sites) - 1} sites)"


def _who(request: Request) -> dict:
    """The signed-in user, for the header and for which action buttons the page shows."""
    from plantguard.api.permissions import principal_of

    p = principal_of(request)
    return {"user": p.actor.name, "role": p.role.value if p.role else "none", "csrf": p.csrf,
            "can_operate": p.can(Permission.ALARMS_OPERATE), "permissions": p.permissions}


def render(request: Request, template: str, page: str, status_code: int = 200, **ctx) -> HTMLResponse:
    svc: Services = request.app.state.services
    tz = ctx.pop("tz", None) or plant_timezone(svc)
    since = max((a.updated_at for a in _alarms(svc)), default=0)
    who = _who(request)
    base = {"page": page, "nav": [n for n in NAV if n[0] not in NAV_NEEDS or who["permissions"] >= {NAV_NEEDS[n[0]]}], "since_us": since, "plant_name": plant_name(svc), "tz": tz, "plant_tz": plant_timezone(svc),
            "now": local_time(svc.clock(), tz), **who}
    return templates.TemplateResponse(request, template, {**base, **ctx}, status_code=status_code)


def not_found(request: Request, message: str) -> HTMLResponse:
    return render(request, "not_found.html", "not-found", status_code=404, message=message)


def _point_units(svc: Services) -> dict[str, str]:
    return {tag: p.unit for tag, *_r, p in svc.model.current().iter_points()}


def alarm_view(rec, units: dict[str, str], svc: Services) -> dict:
    """An alarm record as the pages show it: times in the site's zone, value with its unit."""
    d = rec.as_dict()
    d.pop("extra", None)
    tz = tz_of(svc, rec.tag)
    unit = (rec.extra or {}).get("unit") or units.get(rec.tag, "")
    parts = rec.tag.split("/")
    d.update(asset=parts[3] if len(parts) >= 4 else "", asset_path="/".join(parts[:4]) if len(parts) >= 4 else "",
             point=parts[5] if len(parts) == 6 else "", updated_local=local_time(rec.updated_at, tz))
    d.update(state_words=STATE_WORDS.get(rec.state, rec.state), unit=unit, tz=tz,
             raised_local=local_time(rec.raised_at, tz), raised_iso=iso_time(rec.raised_at),
             updated_iso=iso_time(rec.updated_at), shelved_until_local=local_time(rec.shelved_until, tz) if rec.shelved_until else "",
             value_text=fmt_value(rec.value, unit), limit_text=fmt_value(rec.limit, unit) if rec.limit is not None else "")
    return d


def _alarms(svc: Services, **kw) -> list:
    return svc.alarms.list(**kw)


# -- overview -----------------------------------------------------------------------------------------------------
def _worst(statuses) -> str:
    order = ["urgent", "high", "medium", "low", "ok", "nodata"]
    present = set(statuses)
    return next((s for s in order if s in present), "nodata")


def overview_data(svc: Services) -> dict:
    now = svc.clock()
    active = [a for a in _alarms(svc, active=True) if a.state != AlarmState.shelved.value]
    tags = [t for t, *_ in svc.model.current().iter_points()]
    latest = svc.telemetry.latest(tags) if tags else {}
    sites = []
    for s in svc.model.current().sites:
        site = {"id": s.id, "name": s.name or s.id, "timezone": s.timezone, "areas": []}
        for a in s.areas:
            area = {"id": a.id, "name": a.name or a.id, "lines": []}
            for ln in a.lines:
                lpath = f"{s.id}/{a.id}/{ln.id}"
                line = {"id": ln.id, "path": lpath, "name": ln.name or ln.id, "assets": [], "oee": None, "oee_error": None}
                for asset in ln.assets:
                    apath = f"{lpath}/{asset.id}"
                    mine = [x for x in active if x.tag == apath or x.tag.startswith(apath + "/")]
                    has_data = any(latest.get(f"{apath}/{d.id}/{p.id}") for d in asset.devices for p in d.points)
                    if mine:
                        status = max((x.priority for x in mine), key=lambda p: PRIORITY_RANK.get(p, 0))
                    else:
                        status = "ok" if has_data else "nodata"
                    line["assets"].append({"id": asset.id, "path": apath, "name": asset.name or asset.id, "kind": asset.kind,
                                           "status": status, "alarm_count": len(mine)})
                line["status"] = _worst(x["status"] for x in line["assets"])
                if ln.oee is not None:
                    try:
                        line["oee"] = svc.performance.oee(lpath, now - OEE_WINDOW_US, now, "total")["total"]
                    except PlantguardError as e:
                        line["oee_error"] = str(e)
                    except Exception:  # noqa: BLE001 - one line's bad history must not take the overview down
                        log.exception("OEE of %s failed", lpath)
                        line["oee_error"] = "could not be computed (see the server log)"
                area["lines"].append(line)
            area["status"] = _worst(x["status"] for x in area["lines"])
            site["areas"].append(area)
        site["status"] = _worst(x["status"] for x in site["areas"])
        sites.append(site)
    return {"sites": sites, "active": active}


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request) -> HTMLResponse:
    svc: Services = request.app.state.services
    data = overview_data(svc)
    units = _point_units(svc)
    health = svc.status.health()
    return render(request, "overview.html", "overview", sites=data["sites"],
                  alarms=[alarm_view(a, units, svc) for a in data["active"][:10]], active_count=len(data["active"]),
                  health=health, rate=svc.status.ingest().readings_per_s, alarms_enabled=svc.alarms.enabled)


# -- asset ----------------------------------------------------------------------------------------------------------
def asset_context(svc: Services, path: str) -> dict:
    """What the asset page needs about one asset (path 'site/area/line/asset'); NotFound for an unknown one."""
    parts = path.strip("/").split("/")
    if len(parts) != 4:
        raise NotFound(f"no asset {path!r} (give 'site/area/line/asset')")
    ref = svc.model.index().asset("/".join(parts))
    if ref is None:
        raise NotFound(f"no asset {path!r} in the plant model")
    asset, apath = ref.asset, ref.path
    points = []
    for d in asset.devices:
        for p in d.points:
            lim = p.alarms.limits if p.alarms is not None else None
            limits = {k: getattr(lim, k) for k in ("hi", "hihi", "lo", "lolo")
                      if lim is not None and getattr(lim, k) is not None}
            an = p.analytics
            points.append({
                "tag": f"{apath}/{d.id}/{p.id}", "id": p.id, "device": d.id, "name": p.name or p.id,
                "unit": p.unit, "data_type": p.data_type.value, "period_s": us_of(p.period) / 1e6,
                "limits": limits, "spc": an is not None and an.spc is not None,
                "anomaly": an is not None and an.anomaly is not None,
            })
    aa = asset.analytics
    # the anomaly chart draws one threshold line: the asset detector's, else the first point's
    thresholds = ([aa.anomaly.threshold] if aa is not None and aa.anomaly is not None else []) + [
        p.analytics.anomaly.threshold for d in asset.devices for p in d.points
        if p.analytics is not None and p.analytics.anomaly is not None]
    return {"path": apath, "name": asset.name or asset.id, "kind": asset.kind, "line_path": ref.path.rsplit("/", 1)[0],
            "timezone": ref.site.timezone, "points": points, "rul": aa is not None and aa.rul is not None,
            "multivariate": aa is not None and aa.anomaly is not None, "oee_line": ref.line.oee is not None,
            "anomaly_threshold": thresholds[0] if thresholds else None}


@router.get("/asset/{path:path}", response_class=HTMLResponse)
def asset_page(request: Request, path: str) -> HTMLResponse:
    svc: Services = request.app.state.services
    try:
        asset = asset_context(svc, path)
    except NotFound:
        return not_found(request, f"There is no asset {path!r} in the plant model (expected site/area/line/asset).")
    return render(request, "asset.html", "asset", asset=asset, tz=asset["timezone"])


# -- alarms ---------------------------------------------------------------------------------------------------------
def _flag(v: str | None) -> bool | None:
    return {"true": True, "false": False}.get((v or "").lower())


@router.get("/alarms", response_class=HTMLResponse)
def alarms_page(request: Request, state: str | None = None, priority: str | None = None, active: str | None = None,
                prefix: str | None = None) -> HTMLResponse:
    svc: Services = request.app.state.services
    # An unknown filter value is shown as "any" rather than an error page: the form only offers valid ones.
    # No state filter hides the normal ones (the ISA-18.2 alarm summary); "all" shows them too.
    shown_state = state if state in STATE_WORDS or state == "all" else ""
    state = state if state in STATE_WORDS else None
    priority = priority if priority in PRIORITY_RANK else None
    act = _flag(active)
    prefix = (prefix or "").strip()[:MAX_TEXT] or None
    units = _point_units(svc)
    recs = _alarms(svc, state=state, priority=priority, active=act, tag_prefix=prefix)
    if not shown_state:
        recs = [a for a in recs if a.state != AlarmState.normal.value]
    rows = [alarm_view(a, units, svc) for a in recs]
    # Units of every alarmable tag, for rows the live stream adds without a reload.
    live_units = {t: u for t, u in units.items() if u}
    return render(request, "alarms.html", "alarms", alarms=rows, states=STATE_WORDS, priorities=PRIORITIES,
                  filters={"state": shown_state, "priority": priority or "", "active": "" if act is None else str(act).lower(),
                           "prefix": prefix or ""}, units=live_units, zones=site_timezones(svc),
                  alarms_enabled=svc.alarms.enabled)


# -- devices --------------------------------------------------------------------------------------------------------
LINK_FIELDS = ["state", "since", "last_ok", "requests", "readings", "bad_readings", "errors", "reconnects", "latency_ms", "last_error"]


def _find_key(d: Any, key: str):
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            r = _find_key(v, key)
            if r is not None:
                return r
    return None


def devices_data(svc: Services, gateways: dict) -> dict:
    now = svc.clock()
    offline = {a.tag for a in _alarms(svc, active=True) if a.condition == "OFFLINE"}
    devices = []
    for dpath, d in svc.model.current().iter_devices():
        tz = tz_of(svc, dpath)
        tags = [f"{dpath}/{p.id}" for p in d.points]
        latest = svc.telemetry.latest(tags) if tags else {}
        seen = [v["ts"] for v in latest.values() if v]
        last = max(seen) if seen else None
        period = max((us_of(p.period) for p in d.points), default=1_000_000)
        if last is None:
            state = "never"
        elif dpath in offline or now - last > d.offline_after_periods * period:
            state = "offline"
        else:
            state = "online"
        devices.append({"path": dpath, "name": d.name or d.id, "protocol": d.protocol, "mode": d.mode, "points": len(d.points),
                        "reporting": len(seen), "state": state, "last_seen": local_time(last, tz), "last_seen_iso": iso_time(last),
                        "age_s": None if last is None else max(0.0, (now - last) / 1e6), "tags": tags})
    tz = plant_timezone(svc)
    sources = []
    for name, h in svc.status.health()["sources"].items():
        links = []
        for lname, ln in (h.get("links") or {}).items():
            row = {k: ln.get(k) for k in LINK_FIELDS}
            for k in ("since", "last_ok"):
                row[k] = local_time(row[k], tz) if row[k] else "—"
            links.append({"name": lname, **row})
        scalars = {k: v for k, v in h.items() if k not in ("links", "ok") and isinstance(v, (str, int, float, bool, type(None)))}
        sources.append({"name": name, "ok": h.get("ok", True), "type": h.get("type", ""), "links": links, "details": scalars,
                        "autonomy_hours": _find_key(h, "autonomy_hours")})
    gws = []
    for g in gateways.values():
        gws.append({"id": g.gateway_id, "last_seq": g.last_seq, "last_seen": local_time(g.last_seen or None, tz),
                    "age_s": (now - g.last_seen) / 1e6 if g.last_seen else None, "batches": g.batches,
                    "resent": g.resent_batches, "accepted": g.accepted, "rejected": g.rejected,
                    "gaps": len(g.gaps), "missing": g.unannounced_gap_batches, "buffer": g.buffer})
    return {"devices": devices, "sources": sources, "gateways": gws}


@router.get("/devices", response_class=HTMLResponse)
def devices_page(request: Request) -> HTMLResponse:
    from plantguard.api.gateway import tracker_of

    svc: Services = request.app.state.services
    data = devices_data(svc, dict(tracker_of(request).gateways))
    return render(request, "devices.html", "devices", **data)


# -- data quality ---------------------------------------------------------------------------------------------------
QUALITY_ROWS = 1000


@router.get("/quality", response_class=HTMLResponse)
def quality_page(request: Request, reason: str | None = None, source: str | None = None, code: str | None = None) -> HTMLResponse:
    svc: Services = request.app.state.services
    reason = (reason or "").strip()[:MAX_TEXT]
    source = (source or "").strip()[:MAX_TEXT] or None
    code = (code or "").strip()[:MAX_TEXT] or None
    if code is not None and code not in REJECT_CODES:
        code = None  # an unknown code filters nothing out rather than everything
    tz = plant_timezone(svc)
    # counted in the store over every dead letter, grouped by the closed set of reason codes
    counts = svc.telemetry.dead_letter_counts()
    by_code: dict[str, dict] = {}
    for c in counts:
        g = by_code.setdefault(c["code"], {"code": c["code"], "label": REJECT_CODES.get(c["code"], c["code"]), "count": 0, "sources": {}})
        g["count"] += c["count"]
        g["sources"][c["source"] or "—"] = g["sources"].get(c["source"] or "—", 0) + c["count"]
    groups = sorted(by_code.values(), key=lambda g: -g["count"])
    total = sum(g["count"] for g in groups)
    rows = [asdict(r) for r in svc.telemetry.dead_letters(limit=QUALITY_ROWS, source=source, code=code)]
    shown = [r for r in rows if reason.lower() in (r["reason"] or "").lower()] if reason else rows
    units = _point_units(svc)
    view = [{**r, "value_text": "—" if r["value"] is None else f"{r['value']} {unit_symbol(units.get(r['point'] or '', ''))}".strip(),
             "received_local": local_time(r["received_at"], tz), "received_iso": iso_time(r["received_at"]),
             "ts_local": local_time(r["ts"], tz_of(svc, r["point"] or "")) if r["ts"] is not None else "—",
             "kind": r.get("code") or "other"} for r in shown[:200]]
    return render(request, "quality.html", "quality", rows=view, total=total, fetched=len(rows), matching=len(shown),
                  groups=groups, reason=reason, source=source or "", code=code or "", codes=REJECT_CODES, limit=QUALITY_ROWS)
