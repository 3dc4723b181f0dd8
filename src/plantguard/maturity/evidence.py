"""Evidence collectors: facts about how the plant is run, computed from the platform's own records. Each item says
what was measured, over which scope and period, and when; a source that is absent (a capability switched off, no
records) gives an item with status `missing` and its reason, never a passing value. Collectors read only: the same
records and the same period give the same items.

    items = collect(sources, start=t0, end=t1)      # [{"id": "data.completeness_median", "value": 97.2, ...}, ...]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from plantguard.domain.fields import us_of

log = logging.getLogger(__name__)
US = 1_000_000
DAY = 86400 * US
CRITICAL = ("high", "critical")
DEVICE_CRITICAL = ("high", "safety")


@dataclass
class Sources:
    """What the collectors read (None where the capability that holds it is absent)."""

    store: Any                                # AlarmStore, RollupStore, ReadingsStore, SqlStore (own tables)
    index: Callable[[], Any]
    points: Any                               # the point registry (tag -> pid)
    alarm_report: Callable[[int, int], dict] | None
    analytics: Any = None                     # AnalyticsService
    continuity: Any = None
    posture: Any = None
    broker: Any = None
    ca: Any = None
    credential_max_age_days: float | None = None
    training: Callable[[int], dict] | None = None      # at -> the training evidence
    actions: Callable[[], list[dict]] | None = None
    rollouts: Callable[[], dict] | None = None
    findings_seen: Callable[[], dict] | None = None    # (check, device) -> first seen (us)
    settings: Any = None                      # the Evidence settings


def _item(id: str, practice: str, title: str, value, unit: str, scope: str, start: int, end: int, at: int,
          detail: dict | None = None) -> dict:
    return {"id": id, "practice": practice, "title": title, "status": "measured",
            "value": None if value is None else round(float(value), 4), "unit": unit, "scope": scope,
            "start": start, "end": end, "measured_at": at, "detail": detail or {}}


def _missing(id: str, practice: str, title: str, reason: str, start: int, end: int, at: int) -> dict:
    return {"id": id, "practice": practice, "title": title, "status": "missing", "value": None, "unit": "",
            "scope": "", "start": start, "end": end, "measured_at": at, "reason": reason, "detail": {}}


def collect(src: Sources, *, start: int, end: int, at: int) -> list[dict]:
    out: list[dict] = []
    for fn in (_completeness, _quality, _alarm_performance, _predictive, _cyber, _continuity, _people, _integration,
               _improvement):
        try:
            out += fn(src, start, end, at)
        except Exception as e:  # noqa: BLE001 - one failing collector is missing evidence, not a failed assessment
            log.exception("evidence collector %s failed", fn.__name__)
            out.append(_missing(f"{fn.__name__.strip('_')}.error", "data", f"collector {fn.__name__.strip('_')}",
                                f"the collector failed: {type(e).__name__}: {e}", start, end, at))
    return out


# -- data ----------------------------------------------------------------------------------------------------
def completeness(src: Sources, start: int, end: int, width: int, tags: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per point: received / expected readings in each whole bucket of `width` inside [start, end), capped at 1,
    from the bucket of its first reading in the period on."""
    idx = src.index()
    refs = [r for r in idx.points()] if tags is None else [r for r in (idx.point(t) for t in tags) if r is not None]
    lo = -(-start // width) * width
    hi = end - end % width
    if hi <= lo or not refs:
        return {}
    pid_of = {}
    for r in refs:
        pid = src.points.pid(r.tag)
        if pid is not None:
            pid_of[int(pid)] = r
    if not pid_of:
        return {}
    p, b, n = src.store.reading_counts(lo, hi, width, pids=None if tags is None else sorted(pid_of))
    nb = (hi - lo) // width
    out = {}
    grid = np.zeros((max(pid_of) + 1, nb), np.float64)
    keep = (b >= lo) & (b < hi) & (p <= max(pid_of))
    grid[p[keep], (b[keep] - lo) // width] = n[keep]
    for pid, r in pid_of.items():
        period_us = us_of(r.point.period)
        expected = width / max(period_us, 1)
        row = np.minimum(grid[pid] / expected, 1.0)
        # expected from the point's first reading in the period on: a point the platform has read for a day is
        # not 3 % complete over a 30-day period (a point that never reported counts from the period's start)
        first = np.flatnonzero(row)
        out[r.tag] = row[first[0]:] if len(first) else row
    return out


def _completeness(src: Sources, start: int, end: int, at: int) -> list[dict]:
    width = int(src.settings.completeness_bucket * US)
    per = completeness(src, start, end, width)
    t1, t2 = "median data completeness", "points delivering 95 % of their expected readings"
    if not per:
        return [_missing("data.completeness_median", "data", t1, "no points with readings in the period", start, end, at),
                _missing("data.complete_share", "data", t2, "no points with readings in the period", start, end, at)]
    tags = sorted(per)
    share = np.array([per[t].mean() for t in tags]) * 100
    worst = np.argsort(share, kind="stable")[:20]
    scope = f"{len(tags)} points"
    return [_item("data.completeness_median", "data", t1, float(np.median(share)), "%", scope, start, end, at,
                  {"bucket_s": width / US, "worst": [{"point": tags[i], "percent": round(float(share[i]), 2)} for i in worst]}),
            _item("data.complete_share", "data", t2, float((share >= 95).mean() * 100), "%", scope, start, end, at,
                  {"points_complete": int((share >= 95).sum())})]


# -- real-time quality ---------------------------------------------------------------------------------------
def _critical_points(idx) -> tuple[list, str]:
    refs = list(idx.points())
    crit = [r for r in refs if getattr(r.point.criticality, "value", r.point.criticality) in CRITICAL]
    if crit:
        return crit, "critical points (criticality high or critical)"
    return refs, "every point (none is marked high or critical)"


def _quality(src: Sources, start: int, end: int, at: int) -> list[dict]:
    idx = src.index()
    crit, scope = _critical_points(idx)
    t1, t2 = "critical points with SPC and spec limits", "SPC points capable (Cpk >= 1.33)"
    if not crit:
        return [_missing("quality.spc_coverage", "quality", t1, "the plant model has no points", start, end, at),
                _missing("quality.capable_share", "quality", t2, "the plant model has no points", start, end, at)]
    with_spc = [r for r in crit if r.point.analytics is not None and r.point.analytics.spc is not None
                and (r.point.analytics.spc.lsl is not None or r.point.analytics.spc.usl is not None)]
    out = [_item("quality.spc_coverage", "quality", t1, 100.0 * len(with_spc) / len(crit), "%", f"{len(crit)} {scope}",
                 start, end, at, {"with_spc": len(with_spc), "without": [r.tag for r in crit if r not in with_spc][:50]})]
    if not with_spc or src.analytics is None:
        out.append(_missing("quality.capable_share", "quality", t2, "no critical point has SPC with spec limits"
                            if not with_spc else "analytics are off", start, end, at))
        return out
    checked, capable, rows = 0, 0, []
    for r in sorted(with_spc, key=lambda r: r.tag)[: src.settings.max_points]:
        try:
            rep = src.analytics.spc_report(r.tag, start, end)
        except Exception:  # noqa: BLE001 - a point without data is not capable evidence either way
            continue
        cap = rep.get("capability") or {}
        cpk = cap.get("cpk")
        if cpk is None or not np.isfinite(cpk):
            continue
        checked += 1
        capable += cpk >= 1.33
        rows.append({"point": r.tag, "cpk": round(float(cpk), 3)})
    if not checked:
        out.append(_missing("quality.capable_share", "quality", t2, "no SPC point had enough readings in the period", start, end, at))
    else:
        rows.sort(key=lambda x: x["cpk"])
        out.append(_item("quality.capable_share", "quality", t2, 100.0 * capable / checked, "%", f"{checked} SPC points",
                         start, end, at, {"lowest": rows[:20], "median_cpk": float(np.median([x["cpk"] for x in rows]))}))
    return out


def _alarm_performance(src: Sources, start: int, end: int, at: int) -> list[dict]:
    t1, t2, t3 = "average alarms per 10 minutes", "10-minute periods in flood", "bad-actor alarms"
    alarmed = any(r.point.alarms is not None for r in src.index().points())
    if src.alarm_report is None or not alarmed:
        reason = "no point has alarm rules" if not alarmed else "the alarm capability is off"
        return [_missing(i, "quality", t, reason, start, end, at) for i, t in
                (("quality.alarm_rate", t1), ("quality.alarm_flood", t2), ("quality.bad_actors", t3))]
    r = src.alarm_report(start, end)["positions"]["all"]
    return [_item("quality.alarm_rate", "quality", t1, r["per_10min"]["value"], "alarms", "all positions", start, end, at,
                  {"per_day": r["per_day"]["value"], "verdict": r["per_10min"]["verdict"]}),
            _item("quality.alarm_flood", "quality", t2, r["flood_percent"]["value"], "%", "all positions", start, end, at,
                  {"peak_10min": r["peak_10min"]["value"]}),
            _item("quality.bad_actors", "quality", t3, r["bad_actor_count"], "alarms", "all positions", start, end, at,
                  {"top": [b["alarm"] for b in r["bad_actors"][:10]]})]


# -- predictive maintenance ----------------------------------------------------------------------------------
def _critical_assets(idx) -> tuple[list, str]:
    assets = list(idx.assets())

    def critical(a) -> bool:
        for d in a.asset.devices:
            if d.inventory is not None and d.inventory.criticality in DEVICE_CRITICAL:
                return True
            if any(getattr(p.criticality, "value", p.criticality) in CRITICAL for p in d.points):
                return True
        return False

    crit = [a for a in assets if critical(a)]
    return (crit, "critical assets") if crit else (assets, "every asset (none has a high or critical point or device)")


def _predictive(src: Sources, start: int, end: int, at: int) -> list[dict]:
    idx = src.index()
    assets, scope = _critical_assets(idx)
    t1, t2 = "critical assets with anomaly detection or remaining life", "failures preceded by a predictive alert"
    out = []
    if not assets:
        out.append(_missing("predictive.coverage", "predictive", t1, "the plant model has no assets", start, end, at))
    else:
        def watched(a) -> bool:
            if a.asset.analytics is not None:
                return True
            return any(p.analytics is not None and getattr(p.analytics, "anomaly", None) is not None
                       for d in a.asset.devices for p in d.points)
        w = [a for a in assets if watched(a)]
        out.append(_item("predictive.coverage", "predictive", t1, 100.0 * len(w) / len(assets), "%", f"{len(assets)} {scope}",
                         start, end, at, {"watched": len(w), "unwatched": [a.path for a in assets if a not in w][:50]}))
    if src.continuity is None or src.analytics is None:
        out.append(_missing("predictive.lead_share", "predictive", t2,
                            "failures are the continuity capability's incidents" if src.continuity is None else "analytics are off",
                            start, end, at))
        return out
    lead = int(src.settings.lead_window * US)
    failures = [i for i in src.continuity.incidents(limit=100_000) if i.category == "outage" and start <= i.started_at < end
                and i.merged_into is None and not i.condition_only]
    if not failures:
        out.append(_missing("predictive.lead_share", "predictive", t2, "no failure (outage incident) in the period", start, end, at))
        return out
    preds = [i for i in src.continuity.incidents(limit=100_000) if i.category == "predictive"]
    events = src.analytics.events(since=start - lead, until=end, limit=100_000)
    before, rows = 0, []
    for f in failures:
        root = f.root.rstrip("/")
        keys = {root, *[k.rsplit(":", 1)[0] for k in f.signals]}

        def related(path: str) -> bool:
            return any(path == k or path.startswith(k + "/") or k.startswith(path + "/") for k in keys)
        warned = any(p.started_at < f.started_at and f.started_at - p.started_at <= lead and related(p.root) for p in preds) or \
            any(e.ts < f.started_at and f.started_at - e.ts <= lead and e.kind in ("rul", "anomaly") and related(e.key) for e in events)
        before += warned
        rows.append({"incident": f.id, "root": f.root, "predicted": bool(warned)})
    out.append(_item("predictive.lead_share", "predictive", t2, 100.0 * before / len(failures), "%", f"{len(failures)} failures",
                     start, end, at, {"failures": rows[:50], "lead_window_s": lead / US}))
    return out


# -- cyber risk ----------------------------------------------------------------------------------------------
def _cyber(src: Sources, start: int, end: int, at: int) -> list[dict]:
    t1, t2, t3 = "open critical or high findings older than 30 days", "age of the oldest open finding", \
        "devices with credentials within the allowed age"
    if src.posture is None:
        reason = "the security capability is off"
        return [_missing(i, "cyber", t, reason, start, end, at) for i, t in
                (("cyber.high_overdue", t1), ("cyber.oldest_finding_days", t2), ("cyber.credentials_rotated", t3))]
    report = src.posture.last or src.posture.run()
    seen = src.findings_seen() if src.findings_seen else {}
    ages, overdue = [], 0
    for f in report.findings:
        first = seen.get((f.check, f.device), at)
        age_d = max(0.0, (at - first) / DAY)
        ages.append(age_d)
        if f.severity in ("critical", "high") and age_d > 30:
            overdue += 1
    sev = report.by_severity()
    out = [_item("cyber.high_overdue", "cyber", t1, overdue, "findings", f"{report.devices} devices", start, end, at,
                 {"open_by_severity": sev, "audit_at": report.at}),
           _item("cyber.oldest_finding_days", "cyber", t2, max(ages) if ages else 0.0, "days", f"{len(ages)} open findings",
                 start, end, at, {"first_seen_recorded": len(seen)})]
    creds: dict[str, int] = {}
    for c in (src.broker.credentials() if src.broker is not None else []):
        if c.active(at):
            creds[c.device] = max(creds.get(c.device, 0), c.created_at)
    for c in (src.ca.certificates() if src.ca is not None else []):
        if c.active(at):
            creds[c.device] = max(creds.get(c.device, 0), c.created_at)
    if not creds:
        out.append(_missing("cyber.credentials_rotated", "cyber", t3, "no device holds a platform-issued credential", start, end, at))
        return out
    max_age = (src.credential_max_age_days or 365) * DAY
    fresh = [d for d, t in creds.items() if at - t <= max_age]
    out.append(_item("cyber.credentials_rotated", "cyber", t3, 100.0 * len(fresh) / len(creds), "%", f"{len(creds)} devices",
                     start, end, at, {"max_age_days": max_age / DAY, "stale": sorted(set(creds) - set(fresh))[:50]}))
    return out


# -- continuity ----------------------------------------------------------------------------------------------
def _continuity(src: Sources, start: int, end: int, at: int) -> list[dict]:
    ids = (("continuity.drills_90d", "drills in the window"), ("continuity.drills_passed_share", "drills that passed"),
           ("continuity.reviewed_share", "resolved incidents with a post-incident review"),
           ("continuity.mttr_ratio", "MTTR against the period before"))
    if src.continuity is None:
        return [_missing(i, "continuity", t, "the continuity capability is off", start, end, at) for i, t in ids]
    out = []
    win = int(src.settings.drills_window * US)
    drills = []
    for d in src.continuity.drill_reports(limit=10_000):
        t = _epoch_us(d.get("started"))
        if t is not None and at - win <= t <= at:
            drills.append(d)
    out.append(_item(ids[0][0], "continuity", ids[0][1], len(drills), "drills", f"last {win / DAY:g} days", at - win, at, at,
                     {"files": [d.get("file") for d in drills[:50]]}))
    if drills:
        passed = sum(d.get("status") == "passed" for d in drills)
        out.append(_item(ids[1][0], "continuity", ids[1][1], 100.0 * passed / len(drills), "%", f"{len(drills)} drills",
                         at - win, at, at, {"failed": [d.get("file") for d in drills if d.get("status") != "passed"][:50]}))
    else:
        out.append(_missing(ids[1][0], "continuity", ids[1][1], "no drill in the window", at - win, at, at))
    incs = [i for i in src.continuity.incidents(limit=100_000) if i.merged_into is None]
    resolved = [i for i in incs if i.resolved_at is not None and start <= i.resolved_at < end]
    if resolved:
        rev = sum(i.review is not None for i in resolved)
        out.append(_item(ids[2][0], "continuity", ids[2][1], 100.0 * rev / len(resolved), "%", f"{len(resolved)} incidents",
                         start, end, at, {"without_review": [i.id for i in resolved if i.review is None][:50]}))
    else:
        out.append(_missing(ids[2][0], "continuity", ids[2][1], "no incident resolved in the period", start, end, at))
    span = end - start
    prev = [i for i in incs if i.resolved_at is not None and start - span <= i.resolved_at < start]
    if resolved and prev:
        now_ = float(np.mean([i.resolved_at - i.started_at for i in resolved])) / US
        before = float(np.mean([i.resolved_at - i.started_at for i in prev])) / US
        out.append(_item(ids[3][0], "continuity", ids[3][1], now_ / before if before > 0 else 1.0, "ratio",
                         f"{len(resolved)} vs {len(prev)} incidents", start - span, end, at,
                         {"mttr_s": round(now_, 1), "previous_mttr_s": round(before, 1)}))
    else:
        out.append(_missing(ids[3][0], "continuity", ids[3][1], "needs resolved incidents in this period and the one before",
                            start - span, end, at))
    return out


def _epoch_us(v) -> int | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return int(v * US) if v < 1e12 else int(v)
    try:
        from datetime import datetime

        return int(datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp() * US)
    except ValueError:
        return None


# -- people, integration, improvement (this capability's own records) -----------------------------------------
def _people(src: Sources, start: int, end: int, at: int) -> list[dict]:
    t = "people holding every current training their role requires"
    tr = src.training(at) if src.training else None
    if not tr or not tr["people"]:
        return [_missing("people.training_current", "people", t, "no people in the skills matrix (maturity.training)", start, end, at)]
    ok = sum(1 for p in tr["people"] if p["current"])
    return [_item("people.training_current", "people", t, 100.0 * ok / len(tr["people"]), "%", f"{len(tr['people'])} people",
                  start, end, at, {"by_role": tr["by_role"], "gaps": [p["name"] for p in tr["people"] if not p["current"]][:50]})]


def _integration(src: Sources, start: int, end: int, at: int) -> list[dict]:
    ids = (("integration.gates_evaluated", "rollout gates evaluated"), ("integration.promoted_on_go", "promotions after a passed gate"),
           ("integration.devices_piloted", "devices that entered through a pilot phase"))
    r = src.rollouts() if src.rollouts else None
    if not r or not r["plans"]:
        return [_missing(i, "integration", t, "no rollout plan (maturity.rollouts)", start, end, at) for i, t in ids]
    out = [_item(ids[0][0], "integration", ids[0][1], r["evaluations"], "gates", f"{r['plans']} plans", start, end, at)]
    if r["promotions"]:
        out.append(_item(ids[1][0], "integration", ids[1][1], 100.0 * r["promotions_on_go"] / r["promotions"], "%",
                         f"{r['promotions']} promotions", start, end, at))
    else:
        out.append(_missing(ids[1][0], "integration", ids[1][1], "no phase promoted yet", start, end, at))
    n_dev = len(list(src.index().devices()))
    out.append(_item(ids[2][0], "integration", ids[2][1], 100.0 * r["devices_piloted"] / n_dev if n_dev else 0.0, "%",
                     f"{n_dev} devices", start, end, at))
    return out


def _improvement(src: Sources, start: int, end: int, at: int) -> list[dict]:
    from plantguard.maturity.model import AREA_IDS

    acts = src.actions() if src.actions else []
    ids = (("improvement.actions", "improvement actions recorded"), ("improvement.on_time_share", "due actions done on time"),
           ("improvement.verified_share", "done actions with a verified effect"),
           ("improvement.effective_share", "verified actions that improved their KPI"))
    out = [_item(ids[0][0], "improvement", ids[0][1], len(acts), "actions", "the backlog", start, end, at,
                 {"open": sum(a["state"] in ("open", "in_progress") for a in acts)})]
    due = [a for a in acts if a.get("due_us") and a["due_us"] <= at]
    if due:
        on_time = sum(1 for a in due if a.get("done_us") and a["done_us"] <= a["due_us"])
        out.append(_item(ids[1][0], "improvement", ids[1][1], 100.0 * on_time / len(due), "%", f"{len(due)} due actions", start, end, at))
    else:
        out.append(_missing(ids[1][0], "improvement", ids[1][1], "no action is due yet", start, end, at))
    done = [a for a in acts if a["state"] in ("done", "verified")]
    ver = [a for a in acts if a.get("verification") and a["verification"].get("verdict") in ("improved", "not_improved")]
    if done:
        out.append(_item(ids[2][0], "improvement", ids[2][1], 100.0 * len(ver) / len(done), "%", f"{len(done)} done actions", start, end, at))
    else:
        out.append(_missing(ids[2][0], "improvement", ids[2][1], "no action done yet", start, end, at))
    if ver:
        eff = sum(a["verification"]["verdict"] == "improved" for a in ver)
        out.append(_item(ids[3][0], "improvement", ids[3][1], 100.0 * eff / len(ver), "%", f"{len(ver)} verified", start, end, at))
    else:
        out.append(_missing(ids[3][0], "improvement", ids[3][1], "no action verified yet", start, end, at))
    for area in AREA_IDS:
        n = sum(1 for a in ver if a["verification"]["verdict"] == "improved" and a.get("practice") == area)
        out.append(_item(f"improvement.verified.{area}", area, f"verified improvements in {area}", n, "actions", "the backlog",
                         start, end, at))
    return out
