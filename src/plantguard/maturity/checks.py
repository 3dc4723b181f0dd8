"""The `maturity:` section against the plant model: unknown practice areas, levels or KPIs, scopes naming
nothing, rollouts whose scopes overlap, people in roles nobody defined. Errors by field path in the section."""

from __future__ import annotations

from plantguard.maturity.config import KPIS, MaturitySettings, Scope
from plantguard.maturity.model import AREA_IDS


def kpi_problem(name: str) -> str | None:
    if name in KPIS:
        return None
    if name.startswith("value:") and len(name) > 6:
        return None
    return f"unknown KPI {name!r}: one of {', '.join(KPIS)} or value:<point id>"


def resolve(scope: Scope, index) -> tuple[list[str], list[tuple[str, str]]]:
    """The device paths a scope names, in model order, and its problems (path in the scope, message)."""
    out: dict[str, None] = {}
    probs = []
    for k, d in enumerate(scope.devices):
        if index.device(d) is None:
            probs.append((f"devices[{k}]", f"{d!r} is not a device of the plant model (site/area/line/asset/device)"))
        else:
            out[d] = None
    for k, ln in enumerate(scope.lines):
        if index.line(ln) is None:
            probs.append((f"lines[{k}]", f"{ln!r} is not a line of the plant model (site/area/line)"))
    for k, s in enumerate(scope.sites):
        if index.site(s) is None:
            probs.append((f"sites[{k}]", f"{s!r} is not a site of the plant model"))
    lines = {ln.rstrip("/") for ln in scope.lines}
    sites = set(scope.sites)
    if lines or sites:
        for r in index.devices():
            if r.path.split("/", 1)[0] in sites or r.path.rsplit("/", 2)[0] in lines:
                out[r.path] = None
    return list(out), probs


def check(section: MaturitySettings, index) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, p in enumerate(section.positions):
        for j, path in enumerate(p.scope):
            if not _known_path(path, index):
                out.append((f"positions[{k}].scope[{j}]", f"{path!r} is not a site, area or line of the plant model"))
    names = [p.name for p in section.positions]
    for k, n in enumerate(names):
        if n in names[:k] or n in ("all", "unassigned"):
            out.append((f"positions[{k}].name", f"position {n!r} is {'reserved' if n in ('all', 'unassigned') else 'named twice'}"))
    sites_seen = []
    for k, t in enumerate(section.targets):
        if t.site != "*" and index.site(t.site) is None:
            out.append((f"targets[{k}].site", f"{t.site!r} is not a site of the plant model (or * for the default)"))
        if t.site in sites_seen:
            out.append((f"targets[{k}].site", f"a second target profile for {t.site!r}"))
        sites_seen.append(t.site)
        for area, lv in t.levels.items():
            if area not in AREA_IDS:
                out.append((f"targets[{k}].levels.{area}", f"unknown practice area {area!r}: one of {', '.join(AREA_IDS)}"))
            elif not isinstance(lv, int) or not 1 <= lv <= 5:
                out.append((f"targets[{k}].levels.{area}", "a target level is 1 to 5"))
    roles = [r.name for r in section.training.roles]
    for k, r in enumerate(roles):
        if r in roles[:k]:
            out.append((f"training.roles[{k}].name", f"role {r!r} is defined twice"))
    for k, r in enumerate(section.training.roles):
        skills = [s.name for s in r.skills]
        for j, s in enumerate(skills):
            if s in skills[:j]:
                out.append((f"training.roles[{k}].skills[{j}].name", f"skill {s!r} is listed twice for {r.name!r}"))
    people = [p.name for p in section.training.people]
    for k, p in enumerate(section.training.people):
        if p.role not in roles:
            out.append((f"training.people[{k}].role", f"unknown role {p.role!r}: define it under training.roles"))
        if p.name in people[:k]:
            out.append((f"training.people[{k}].name", f"{p.name!r} is listed twice"))
    owner: dict[str, str] = {}  # device -> the rollout phase that brings it in
    rnames = [r.name for r in section.rollouts]
    for k, ro in enumerate(section.rollouts):
        if ro.name in rnames[:k]:
            out.append((f"rollouts[{k}].name", f"rollout {ro.name!r} is defined twice"))
        pnames = [p.name for p in ro.phases]
        for j, ph in enumerate(ro.phases):
            base = f"rollouts[{k}].phases[{j}]"
            if ph.name in pnames[:j]:
                out.append((f"{base}.name", f"phase {ph.name!r} is named twice in {ro.name!r}"))
            devices, probs = resolve(ph.scope, index)
            out += [(f"{base}.scope.{p}", m) for p, m in probs]
            for d in devices:
                prev = owner.get(d)
                if prev is not None:
                    out.append((f"{base}.scope", f"scopes overlap: {d} is already in {prev}"))
                    break
            for d in devices:
                owner.setdefault(d, f"{ro.name}/{ph.name}")
            if ph.baseline is not None:
                bdev, bprobs = resolve(ph.baseline, index)
                out += [(f"{base}.baseline.{p}", m) for p, m in bprobs]
                both = sorted(set(bdev) & set(devices))
                if both:
                    out.append((f"{base}.baseline", f"the baseline overlaps the scope: {both[0]}"))
                if not bdev and not bprobs:
                    out.append((f"{base}.baseline", "the baseline names no device"))
            if ph.scope.empty():
                out.append((f"{base}.scope", "a phase brings in at least one device, line or site"))
            if ph.gate is not None:
                for i, c in enumerate(ph.gate.kpis):
                    msg = kpi_problem(c.kpi)
                    if msg:
                        out.append((f"{base}.gate.kpis[{i}].kpi", msg))
    return out


def _known_path(path: str, index) -> bool:
    parts = path.strip("/").split("/")
    if len(parts) == 1:
        return index.site(parts[0]) is not None
    if len(parts) == 3:
        return index.line(path.strip("/")) is not None
    if len(parts) == 2:
        site = index.site(parts[0])
        return site is not None and any(a.id == parts[1] for a in site.areas)
    return False
