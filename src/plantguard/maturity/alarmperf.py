"""Alarm-system performance (ISA-18.2 section 16 / EEMUA 191 monitoring) from the alarm event log, per operator
position and period. Pure: numpy over an AlarmHistory, no store or web.

    r = report(history, priorities={"…/p0:HI": "high"}, periods={"…/p0:HI": 1e6}, positions={"console-1": ["site1/line-1"]})
    r["positions"]["console-1"]["per_10min"]       # {"value": 0.7, "target": 1.0, "max": 2.0, "verdict": "acceptable"}

What counts. An annunciated alarm is a `raised` event not raised while shelved (those are counted as suppressed).
Chattering: the same alarm raised `chatter_count` times within `chatter_window` (ISA-18.2: 3 in 1 minute). Fleeting:
raised and returned within max(`fleeting`, 2 of its point's periods) - a one-sample excursion of a slow point is
not fleeting because the point cannot report faster. Stale (standing): active longer than `stale_after` (24 h).
Flood: a 10-minute period with more than `flood_threshold` annunciated alarms.

The target bands are the published ones (ISA-18.2 table 16.1, EEMUA 191 table 35): about 1 alarm per 10 minutes
(150 a day) is very likely acceptable, about 2 (300 a day) the maximum manageable; under 1 % of 10-minute periods
in flood; at most 10 alarms in the worst 10 minutes; the 10 most frequent alarms under 1 % to 5 % of all; no
chattering or fleeting alarms; fewer than 5 standing alarms on any day; a priority distribution near 80 / 15 / 5 %
low / medium / high, with the most urgent level under 1 %.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from plantguard.domain.alarms import HISTORY_EVENTS, AlarmHistory

US = 1_000_000
TEN_MIN = 600 * US
DAY = 86400 * US
RAISED, RETURNED, ACKED, SHELVED, UNSHELVED, CLEARED = range(len(HISTORY_EVENTS))
PRIORITY_TARGET = {"low": 80.0, "medium": 15.0, "high": 5.0, "urgent": 1.0}
TARGETS = {  # figure: (very likely acceptable, maximum manageable)
    "per_10min": (1.0, 2.0), "per_day": (150.0, 300.0), "flood_percent": (1.0, 5.0), "peak_10min": (10.0, 20.0),
    "top10_percent": (5.0, 20.0), "chattering": (0.0, 5.0), "fleeting": (0.0, 5.0), "stale_max_day": (4.0, 10.0),
    "high_urgent_percent": (6.0, 20.0)}


@dataclass(frozen=True)
class PerfSettings:
    flood_threshold: int = 10
    chatter_count: int = 3
    chatter_window_us: int = 60 * US
    fleeting_us: int = 5 * US
    stale_after_us: int = DAY
    top: int = 10


def _verdict(value: float, key: str) -> dict:
    ok, max_ = TARGETS[key]
    v = "acceptable" if value <= ok else "manageable" if value <= max_ else "overloaded"
    return {"value": value, "target": ok, "max": max_, "verdict": v}


def _position_of(names: list[str], positions: dict[str, list[str]]) -> np.ndarray:
    """Index of each alarm's operator position (the first whose area or line prefixes its tag); -1: none."""
    order = list(positions)
    out = np.full(len(names), -1, np.int32)
    for i, name in enumerate(names):
        tag = name.rsplit(":", 1)[0]
        for k, pos in enumerate(order):
            if any(tag == p or tag.startswith(p.rstrip("/") + "/") for p in positions[pos]):
                out[i] = k
                break
    return out


def report(h: AlarmHistory, *, priorities: dict[str, str], periods: dict[str, float] | None = None,
           positions: dict[str, list[str]] | None = None, settings: PerfSettings = PerfSettings()) -> dict:
    """The figures for the whole history ("all") and per operator position, each with its target band, the
    daily series, and the bad actors with the rules that make each one noisy."""
    positions = positions or {}
    known = set(h.names)
    extra = [n for n in h.active_at_start if n not in known]  # standing all window long, no event in it
    if extra:
        h = replace(h, names=h.names + extra)
    pos_of = _position_of(h.names, positions)
    out = {"start": h.start, "end": h.end, "settings": {
        "flood_threshold": settings.flood_threshold, "chatter_count": settings.chatter_count,
        "chatter_window_s": settings.chatter_window_us / US, "fleeting_s": settings.fleeting_us / US,
        "stale_after_s": settings.stale_after_us / US}, "positions": {}}
    groups = [("all", None)] + [(name, k) for k, name in enumerate(positions)]
    if positions and (pos_of < 0).any():
        groups.append(("unassigned", -1))
    prio = np.array([priorities.get(n, "unknown") for n in h.names], dtype=object)
    per_s = np.array([float((periods or {}).get(n.rsplit(":", 1)[0], 0.0)) for n in h.names], np.float64)
    for name, k in groups:
        keep = None if k is None else np.flatnonzero(pos_of == k)
        out["positions"][name] = _figures(h, keep, prio, per_s, settings)
    return out


def _figures(h: AlarmHistory, keep_alarms: np.ndarray | None, prio: np.ndarray, per_s: np.ndarray, s: PerfSettings) -> dict:
    """Long on purpose: every figure of the report over one group of alarms, each a few vectorised lines."""
    n_alarms = len(h.names)
    sel = np.ones(len(h.at), bool) if keep_alarms is None else np.isin(h.alarm, keep_alarms)
    alarm, at, ev, wsh = h.alarm[sel], h.at[sel], h.event[sel], h.while_shelved[sel]
    span = max(h.end - h.start, 1)
    raised = ev == RAISED
    ann = raised & ~wsh
    ra, rt = alarm[ann], at[ann]
    total = int(ann.sum())
    # rates and floods over the 10-minute periods of the window (the last partial one counts as a period)
    n_bins = max(1, -(-span // TEN_MIN))
    per_bin = np.bincount(((rt - h.start) // TEN_MIN).astype(np.int64), minlength=n_bins)[:n_bins]
    flood_bins = per_bin > s.flood_threshold
    days = span / DAY
    n_days = max(1, -(-span // DAY))
    per_day = np.bincount(((rt - h.start) // DAY).astype(np.int64), minlength=n_days)[:n_days]
    flood_per_day = np.bincount((np.flatnonzero(flood_bins) * TEN_MIN // DAY).astype(np.int64), minlength=n_days)[:n_days]
    # the most frequent alarms
    counts = np.bincount(ra, minlength=n_alarms)
    top_idx = np.argsort(-counts, kind="stable")[: s.top]
    top_idx = top_idx[counts[top_idx] > 0]
    top = [{"alarm": h.names[i], "count": int(counts[i]), "percent": round(100.0 * counts[i] / total, 2)} for i in top_idx]
    top_share = 100.0 * counts[top_idx].sum() / total if total else 0.0
    # chattering: raised chatter_count times within the window, same alarm (time order within each alarm)
    order = np.argsort(ra, kind="stable")
    sa, st = ra[order], rt[order]
    c = s.chatter_count - 1
    chat = np.zeros(n_alarms, np.int64)
    if len(sa) > c:
        same = sa[c:] == sa[:-c]
        close = (st[c:] - st[:-c]) <= s.chatter_window_us
        hits = same & close
        chat = np.bincount(sa[c:][hits], minlength=n_alarms)
    # raise -> return pairs (fleeting, standing): the raise/return events of each alarm in time order
    rr = (ev == RAISED) | (ev == RETURNED) | (ev == CLEARED)
    pa, pt, pe = alarm[rr], at[rr], ev[rr]
    o2 = np.argsort(pa, kind="stable")
    pa, pt, pe = pa[o2], pt[o2], pe[o2]
    nxt_same = np.zeros(len(pa), bool)
    nxt_same[:-1] = pa[1:] == pa[:-1]
    is_r = pe == RAISED
    pair = is_r.copy()
    pair[:-1] &= nxt_same[:-1] & (pe[1:] != RAISED)
    pair[-1:] = False
    dur = np.zeros(len(pa), np.int64)
    dur[:-1] = pt[1:] - pt[:-1]
    limit = np.maximum(s.fleeting_us, 2 * per_s[pa] * US) if len(pa) else np.zeros(0)
    fleeting_ev = pair & (dur < limit)
    fleet = np.bincount(pa[fleeting_ev], minlength=n_alarms)
    # standing intervals: raised ... returned, or still active at the end; and those standing when the window began
    last_raise = is_r & ~nxt_same
    iv_start = [pt[pair], pt[last_raise]]
    iv_end = [pt[pair] + dur[pair], np.full(int(last_raise.sum()), h.end, np.int64)]
    iv_alarm = [pa[pair], pa[last_raise]]
    idx_of = {n: i for i, n in enumerate(h.names)}
    firsts, first_at = np.unique(pa, return_index=True)
    first_of = dict(zip(firsts.tolist(), pt[first_at].tolist()))
    kept = None if keep_alarms is None else set(keep_alarms.tolist())
    s_start, s_end, s_alarm, s_names = [], [], [], []
    for name, since in h.active_at_start.items():
        i = idx_of[name]
        if kept is not None and i not in kept:
            continue
        s_start.append(since)
        s_end.append(first_of.get(i, h.end))
        s_alarm.append(i)
        s_names.append(name)
    iv_start_a = np.concatenate(iv_start + [np.array(s_start, np.int64)])
    iv_end_a = np.concatenate(iv_end + [np.array(s_end, np.int64)])
    long_ = (iv_end_a - iv_start_a) > s.stale_after_us
    n_ev = len(iv_start_a) - len(s_start)
    names_long = np.concatenate([np.concatenate(iv_alarm).astype(np.int64)[long_[:n_ev]], np.zeros(0, np.int64)])
    stale_names = sorted({h.names[i] for i in np.unique(names_long).tolist()} |
                         {n for n, lg in zip(s_names, long_[n_ev:]) if lg})
    ls, le = iv_start_a[long_], iv_end_a[long_]
    stale_per_day = np.zeros(n_days, np.int64)
    for d in range(n_days):  # only the long intervals: a handful
        t = min(h.start + (d + 1) * DAY, h.end)
        stale_per_day[d] = int(((ls <= t - s.stale_after_us) & (le > t - 1)).sum()) if len(ls) else 0
    # priorities of the annunciated alarms
    pr = prio[ra] if len(ra) else np.zeros(0, object)
    dist = {}
    for p in ("low", "medium", "high", "urgent", "unknown"):
        n = int((pr == p).sum())
        if n or p != "unknown":
            dist[p] = {"count": n, "percent": round(100.0 * n / total, 2) if total else 0.0,
                       "target_percent": PRIORITY_TARGET.get(p)}
    hu = (dist["high"]["count"] + dist["urgent"]["count"]) * 100.0 / total if total else 0.0
    shelved_ev = ev == SHELVED
    suppressed = raised & wsh
    # bad actors: each alarm with the rules it breaks
    bad = []
    flood_mask = np.zeros(len(rt), bool)
    if len(rt):
        flood_mask = flood_bins[((rt - h.start) // TEN_MIN).astype(np.int64).clip(0, n_bins - 1)]
    in_flood = np.bincount(ra[flood_mask], minlength=n_alarms)
    top_set = set(top_idx.tolist())
    stale_set = set(stale_names)
    candidates = set(np.flatnonzero(chat).tolist()) | set(np.flatnonzero(fleet).tolist()) | top_set | \
        {idx_of[n] for n in stale_set if n in idx_of}
    for i in candidates:
        rules = []
        if chat[i]:
            rules.append(f"chattering: raised {s.chatter_count} times within {s.chatter_window_us / US:g} s, {int(chat[i])} times")
        if fleet[i]:
            rules.append(f"fleeting: {int(fleet[i])} occurrences returned within {max(s.fleeting_us, 2 * per_s[i] * US) / US:g} s")
        if i in top_set and total and counts[i] * 100.0 / total >= 1.0:
            rules.append(f"frequent: {100.0 * counts[i] / total:.1f} % of all alarms")
        if h.names[i] in stale_set:
            rules.append(f"standing: active longer than {s.stale_after_us / 3_600_000_000:g} h")
        if in_flood[i] and total and in_flood[i] >= 0.1 * flood_mask.sum():
            rules.append(f"flood contributor: {int(in_flood[i])} of the alarms in floods")
        if rules:
            bad.append({"alarm": h.names[i], "priority": str(prio[i]), "count": int(counts[i]), "rules": rules})
    bad.sort(key=lambda b: (-len(b["rules"]), -b["count"], b["alarm"]))
    return {
        "alarms": total,
        "per_10min": _verdict(round(total / (span / TEN_MIN), 3), "per_10min"),
        "per_day": _verdict(round(total / days, 2), "per_day"),
        "flood_percent": _verdict(round(100.0 * flood_bins.sum() / n_bins, 3), "flood_percent"),
        "peak_10min": _verdict(float(per_bin.max(initial=0)), "peak_10min"),
        "top10_percent": _verdict(round(top_share, 2), "top10_percent"),
        "chattering": _verdict(float((chat > 0).sum()), "chattering"),
        "fleeting": _verdict(float((fleet > 0).sum()), "fleeting"),
        "stale_max_day": _verdict(float(stale_per_day.max(initial=0)), "stale_max_day"),
        "high_urgent_percent": _verdict(round(hu, 2), "high_urgent_percent"),
        "top": top, "priorities": dist, "stale": stale_names[:200], "stale_count": len(stale_names),
        "shelved": {"events": int(shelved_ev.sum()), "alarms": int(len(np.unique(alarm[shelved_ev])))},
        "suppressed": {"occurrences": int(suppressed.sum()), "alarms": int(len(np.unique(alarm[suppressed])))},
        "periods_10min": int(n_bins), "flood_periods": int(flood_bins.sum()),
        "daily": {"alarms": per_day.tolist(), "flood_periods": flood_per_day.tolist(), "stale": stale_per_day.tolist()},
        "bad_actors": bad[:200], "bad_actor_count": len(bad),
    }
