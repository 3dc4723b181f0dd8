"""Semantic checks of a plant model document (what a schema cannot say: references between levels, analytics
settings against the points they name), with every problem's field path."""

from __future__ import annotations



from plantguard.errors import ConfigProblem

from plantguard.domain.model import Point


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _list(d: dict, key: str) -> list:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, list) else []


class ModelChecks:
    """Checks of the plant model that need a capability's own code (does this detector exist and build with these
    parameters? is this shift calendar consistent?). The domain calls them while it walks the document; the
    config package passes the implementation (config/checks.py), so the domain imports no capability."""

    def site(self, site: dict, path: str) -> list[ConfigProblem]:
        return []

    def point_anomaly(self, settings: dict, path: str) -> list[ConfigProblem]:
        return []

    def asset_anomaly(self, settings: dict, path: str) -> list[ConfigProblem]:
        return []

    def rul(self, settings: dict, path: str) -> list[ConfigProblem]:
        return []


NO_CHECKS = ModelChecks()


def semantic_problems(data: dict, checks: ModelChecks = NO_CHECKS) -> list[ConfigProblem]:
    """Checks that span fields: unique ids per level, limit ordering, limits inside the range, state codes, time
    zones. Works on the raw document, tolerating fields of the wrong shape (the structural pass reports those),
    so a file gets every problem in one report."""
    problems: list[ConfigProblem] = []

    def dupes(items, path):
        seen: dict[str, int] = {}
        for i, it in enumerate(items):
            ident = it.get("id") if isinstance(it, dict) else None
            if not isinstance(ident, str):
                continue
            if ident in seen:
                problems.append(ConfigProblem(f"{path}[{i}].id", f"duplicate id {ident!r} (also at {path}[{seen[ident]}])"))
            else:
                seen[ident] = i

    def children(items):
        return [(i, it) for i, it in enumerate(items) if isinstance(it, dict)]

    sites = _list(data, "sites")
    dupes(sites, "sites")
    for si, s in children(sites):
        sp = f"sites[{si}]"
        tz = s.get("timezone", "UTC")
        if isinstance(tz, str):
            try:
                import zoneinfo

                zoneinfo.ZoneInfo(tz)
            except Exception:
                problems.append(ConfigProblem(f"{sp}.timezone", f"unknown time zone {tz!r} (use an IANA name like 'Europe/Paris')"))
        dupes(_list(s, "areas"), f"{sp}.areas")
        problems.extend(checks.site(s, sp))
        for ai, a in children(_list(s, "areas")):
            ap = f"{sp}.areas[{ai}]"
            dupes(_list(a, "lines"), f"{ap}.lines")
            for li, ln in children(_list(a, "lines")):
                lp = f"{ap}.lines[{li}]"
                problems.extend(_oee_problems(ln, lp))
                dupes(_list(ln, "assets"), f"{lp}.assets")
                for xi, asset in children(_list(ln, "assets")):
                    xp = f"{lp}.assets[{xi}]"
                    problems.extend(_gate_problems(ln, asset, xp))
                    dupes(_list(asset, "devices"), f"{xp}.devices")
                    problems.extend(_asset_analytics_problems(asset, xp, checks))
                    for di, d in children(_list(asset, "devices")):
                        dp = f"{xp}.devices[{di}]"
                        dupes(_list(d, "points"), f"{dp}.points")
                        for pi, p in children(_list(d, "points")):
                            problems.extend(point_problems(p, f"{dp}.points[{pi}]", checks))
    storage = data.get("storage") if isinstance(data.get("storage"), dict) else {}
    if storage.get("backend") == "postgres" and not storage.get("postgres_dsn"):
        problems.append(ConfigProblem("storage.postgres_dsn", "required when storage.backend is 'postgres'"))
    return problems


def _asset_analytics_problems(asset: dict, xp: str, checks: ModelChecks) -> list[ConfigProblem]:
    """Asset analytics name points as 'device/point' inside the asset: they must exist and be numeric."""
    an = asset.get("analytics") if isinstance(asset.get("analytics"), dict) else {}
    known = {}
    for d in _list(asset, "devices"):
        if isinstance(d, dict):
            for p in _list(d, "points"):
                if isinstance(p, dict) and isinstance(d.get("id"), str) and isinstance(p.get("id"), str):
                    known[f"{d['id']}/{p['id']}"] = p.get("data_type", "float")
    out = []

    def check(path, field):
        if not isinstance(path, str):
            return
        if path not in known:
            out.append(ConfigProblem(field, f"no point {path!r} in this asset (give 'device/point'; known: {', '.join(sorted(known)) or 'none'})"))
        elif known[path] in ("bool", "state"):
            out.append(ConfigProblem(field, f"point {path!r} is of type {known[path]}; analytics need a numeric point"))

    mv = an.get("anomaly") if isinstance(an.get("anomaly"), dict) else None
    if mv is not None:
        pts = mv.get("points") if isinstance(mv.get("points"), list) else []
        for i, path in enumerate(pts):
            check(path, f"{xp}.analytics.anomaly.points[{i}]")
        if len(set(map(str, pts))) != len(pts):
            out.append(ConfigProblem(f"{xp}.analytics.anomaly.points", "a point is listed twice"))
        out.extend(checks.asset_anomaly(mv, f"{xp}.analytics.anomaly"))
    rul = an.get("rul") if isinstance(an.get("rul"), dict) else None
    if rul is not None:
        check(rul.get("point"), f"{xp}.analytics.rul.point")
        if _num(rul.get("failure_threshold")) is not None:
            out.extend(checks.rul(rul, f"{xp}.analytics.rul"))
    return out


def _gate_problems(ln: dict, asset: dict, xp: str) -> list[ConfigProblem]:
    """analytics.only_when reads the machine state from the line's oee.state_point on the same asset."""
    out = []
    oee = ln.get("oee") if isinstance(ln.get("oee"), dict) else None
    state_id = oee.get("state_point", "state") if oee else None
    ids = {p.get("id") for d in _list(asset, "devices") if isinstance(d, dict) for p in _list(d, "points")
           if isinstance(p, dict) and isinstance(p.get("id"), str)}
    for di, d in enumerate(_list(asset, "devices")):
        for pi, p in enumerate(_list(d, "points") if isinstance(d, dict) else []):
            an = p.get("analytics") if isinstance(p, dict) and isinstance(p.get("analytics"), dict) else {}
            if an.get("only_when") is None:
                continue
            path = f"{xp}.devices[{di}].points[{pi}].analytics.only_when"
            if oee is None:
                out.append(ConfigProblem(path, "needs the line's oee section: its state_categories say which state codes are running"))
            elif isinstance(state_id, str) and state_id not in ids:
                out.append(ConfigProblem(path, f"this asset has no state point {state_id!r} (the line's oee.state_point)"))
    return out


def _oee_problems(ln: dict, lp: str) -> list[ConfigProblem]:
    oee = ln.get("oee") if isinstance(ln.get("oee"), dict) else None
    if oee is None:
        return []
    out = []
    if (oee.get("ideal_rate_per_h") is None) == (oee.get("ideal_cycle_s") is None):
        out.append(ConfigProblem(f"{lp}.oee.ideal_rate_per_h", "give exactly one of ideal_rate_per_h and ideal_cycle_s"))
    assets = [x for x in _list(ln, "assets") if isinstance(x, dict)]
    ca = oee.get("counting_asset")
    if isinstance(ca, str) and ca not in {x.get("id") for x in assets if isinstance(x.get("id"), str)}:
        out.append(ConfigProblem(f"{lp}.oee.counting_asset", f"no asset {ca!r} in this line"))
    target = next((x for x in assets if x.get("id") == ca), assets[-1] if assets else None) if ca is None or isinstance(ca, str) else None
    if target is not None:
        ids = {p.get("id") for d in _list(target, "devices") if isinstance(d, dict) for p in _list(d, "points")
               if isinstance(p, dict) and isinstance(p.get("id"), str)}
        for fld, default in (("state_point", "state"), ("good_point", "good-count")):
            pid = oee.get(fld, default)
            if isinstance(pid, str) and pid not in ids:
                out.append(ConfigProblem(f"{lp}.oee.{fld}", f"asset {target.get('id')!r} has no point {pid!r}"))
    return out


def point_problems(p: dict | Point, pp: str, checks: ModelChecks = NO_CHECKS) -> list[ConfigProblem]:
    """Cross-field checks of one point (a raw mapping or a validated Point)."""
    if isinstance(p, Point):
        p = p.model_dump(mode="json", exclude_none=True)
    problems: list[ConfigProblem] = []
    rng = p.get("range") if isinstance(p.get("range"), dict) else None
    low, high = (_num(rng.get("low")), _num(rng.get("high"))) if rng else (None, None)
    if low is not None and high is not None and not low < high:
        problems.append(ConfigProblem(f"{pp}.range", f"low ({low:g}) must be below high ({high:g})"))
    dtype = p.get("data_type", "float")
    if dtype == "state" and not p.get("states"):
        problems.append(ConfigProblem(f"{pp}.states", "a point of data_type 'state' needs its states (code: name)"))
    if dtype != "state" and p.get("states"):
        problems.append(ConfigProblem(f"{pp}.states", "only points of data_type 'state' have states"))
    alarms = p.get("alarms") if isinstance(p.get("alarms"), dict) else {}
    lim = alarms.get("limits") if isinstance(alarms.get("limits"), dict) else None
    if lim is not None:
        order = [(n, _num(lim.get(n))) for n in ("lolo", "lo", "hi", "hihi") if _num(lim.get(n)) is not None]
        if not order and not any(lim.get(n) is not None for n in ("lolo", "lo", "hi", "hihi")):
            problems.append(ConfigProblem(f"{pp}.alarms.limits", "set at least one of hihi, hi, lo, lolo"))
        for (n1, v1), (n2, v2) in zip(order, order[1:]):
            if not v1 < v2:
                problems.append(ConfigProblem(f"{pp}.alarms.limits.{n2}", f"{n2} ({v2:g}) must be above {n1} ({v1:g})"))
        if low is not None and high is not None:
            for n, v in order:
                if not low <= v <= high:
                    problems.append(ConfigProblem(f"{pp}.alarms.limits.{n}", f"{n} ({v:g}) is outside the engineering range [{low:g}, {high:g}]"))
    an = p.get("analytics") if isinstance(p.get("analytics"), dict) else {}
    spc = an.get("spc") if isinstance(an.get("spc"), dict) else None
    if an and dtype in ("bool", "state"):
        problems.append(ConfigProblem(f"{pp}.analytics", f"analytics need a numeric point; this one is of type {dtype}"))
    if spc is not None:
        known_rules = {f"nelson-{i}" for i in range(1, 9)} | {"moving_range", "ewma", "cusum"}
        for i, r in enumerate(spc.get("alarm_rules") or []):
            if isinstance(r, str) and r not in known_rules:
                problems.append(ConfigProblem(f"{pp}.analytics.spc.alarm_rules[{i}]", f"unknown rule {r!r} (known: {', '.join(sorted(known_rules))})"))
        amin, clr = spc.get("alarm_min_points", 4), spc.get("clear_after", 16)
        if isinstance(amin, int) and isinstance(clr, int) and amin > clr:
            problems.append(ConfigProblem(f"{pp}.analytics.spc.alarm_min_points", f"must be at most clear_after ({clr})"))
        if (spc.get("center") is None) != (spc.get("sigma") is None):
            problems.append(ConfigProblem(f"{pp}.analytics.spc", "give both center and sigma for fixed limits, or neither for a phase I baseline"))
        lsl, usl = _num(spc.get("lsl")), _num(spc.get("usl"))
        if lsl is not None and usl is not None and not lsl < usl:
            problems.append(ConfigProblem(f"{pp}.analytics.spc.usl", f"usl ({usl:g}) must be above lsl ({lsl:g})"))
    ad = an.get("anomaly") if isinstance(an.get("anomaly"), dict) else None
    if ad is not None:
        problems.extend(checks.point_anomaly(ad, f"{pp}.analytics.anomaly"))
    return problems
