"""Maintenance KPIs (MTBF, MTTR, MTTF, inherent availability) from state history, and quality KPIs (defect rate,
first-pass yield) from counts.

State histories are read exactly as for OEE (oee.build_timeline: step function, max_gap_s, unknown time).

- A failure is an entry into the unplanned_stop category. A stop interrupted by unknown time (a data gap) and
  continuing after it is one failure; only its known time counts as repair time. A failure belongs to the window
  it starts in; a repair to the window it ends in, with its whole duration.
- MTBF = operating time / failures, operating time being the time in the `operating` categories (running by
  default) inside the window. MTTR = repair time / completed repairs. Availability = MTBF / (MTBF + MTTR).
- No failure: MTBF is None and `mtbf_lower_bound_s` holds the operating time (the machine ran at least that long
  without failing); status "insufficient_data". No completed repair: MTTR is None. Nothing divides by zero.
- MTTF (non-repairable items, or time to first failure over a fleet): total operating time of all items /
  items that failed, which is the maximum-likelihood estimate for a constant failure rate and stays unbiased when
  some items have not failed yet (a plain mean over failed items would ignore the survivors).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plantguard.analytics.oee import (_CAT, _FAULT, _UNKNOWN, CATEGORIES, RUNNING, STATUS_INSUFFICIENT, STATUS_OK,
                                      build_timeline, counter_increments)
from plantguard.errors import InvalidInput

US = 1_000_000


@dataclass(frozen=True)
class MaintenanceKpis:
    status: str  # "ok" (failures and completed repairs seen) or "insufficient_data"
    window_s: float
    operating_s: float
    unknown_s: float
    failures: int
    repairs: int  # completed unplanned stops
    repair_s: float
    open_stop_s: float  # known time of a stop still going on at the end of the data
    mtbf_s: float | None
    mtbf_lower_bound_s: float | None  # operating time when there was no failure
    mttr_s: float | None
    availability: float | None  # MTBF / (MTBF + MTTR)
    issues: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Stop:
    start_us: int
    end_us: int
    known_s: float  # time in unplanned_stop (unknown gaps inside the stop excluded)
    completed: bool  # a known state other than unplanned_stop followed it


def _check_window(start_us: int, end_us: int) -> tuple[int, int]:
    start_us, end_us = int(start_us), int(end_us)
    if end_us <= start_us:
        raise InvalidInput("window end must be after its start")
    return start_us, end_us


def _operating_codes(operating: Sequence[str]) -> list[int]:
    bad = [c for c in operating if c not in CATEGORIES]
    if bad:
        raise InvalidInput(f"unknown categories {bad}; one of {', '.join(CATEGORIES)}")
    return [_CAT[c] for c in operating]


def unplanned_stops(tl, min_failure_s: float = 0.0) -> list[Stop]:
    """Unplanned stops of a timeline, merged across unknown gaps, shorter ones than min_failure_s dropped."""
    stops: list[Stop] = []
    cur: list | None = None  # [start, end, known_us]
    for s, e, c in zip(tl.start.tolist(), tl.end.tolist(), tl.cat.tolist()):
        if c == _FAULT:
            if cur is None:
                cur = [s, e, e - s]
            else:
                cur[1], cur[2] = e, cur[2] + e - s
        elif c == _UNKNOWN:
            continue
        elif cur is not None:
            stops.append(Stop(cur[0], cur[1], cur[2] / US, True))
            cur = None
    if cur is not None:
        stops.append(Stop(cur[0], cur[1], cur[2] / US, False))
    return [x for x in stops if x.known_s >= min_failure_s]


def _time_in(tl, codes: list[int], a: int, b: int) -> float:
    ov, s = tl.overlap(a, b)
    return float(ov[np.isin(tl.cat[s], codes)].sum()) / US


def maintenance_kpis(states: Any, start_us: int, end_us: int, categories: Mapping[int, str], *,
                     max_gap_s: float | None = 300.0, min_failure_s: float = 0.0,
                     operating: Sequence[str] = (RUNNING,)) -> MaintenanceKpis:
    """MTBF, MTTR and availability of one machine over [start_us, end_us). Pass the state history from before the
    window so the state at its start is known."""
    a, b = _check_window(start_us, end_us)
    codes = _operating_codes(operating)
    if not (isinstance(min_failure_s, (int, float)) and min_failure_s >= 0):
        raise InvalidInput("min_failure_s must be a number >= 0")
    tl, cleaned = build_timeline(states, categories, b, max_gap_s)
    window_s = (b - a) / US
    ov, s = tl.overlap(a, b)
    known_s = float(ov[tl.cat[s] != _UNKNOWN].sum()) / US
    operating_s = _time_in(tl, codes, a, b)
    stops = unplanned_stops(tl, min_failure_s)
    failures = sum(1 for x in stops if a <= x.start_us < b)
    done = [x for x in stops if x.completed and a < x.end_us <= b]
    repair_s = float(sum(x.known_s for x in done))
    open_s = float(sum(x.known_s for x in stops if not x.completed and x.start_us < b))
    mtbf = operating_s / failures if failures else None
    mttr = repair_s / len(done) if done else None
    avail = mtbf / (mtbf + mttr) if (mtbf is not None and mttr is not None and mtbf + mttr > 0) else None
    issues = cleaned.issues("states")
    if tl.unmapped_samples:
        issues["states.unmapped_codes"] = tl.unmapped_samples
    return MaintenanceKpis(status=STATUS_OK if failures and done else STATUS_INSUFFICIENT, window_s=window_s,
                           operating_s=operating_s, unknown_s=window_s - known_s, failures=failures,
                           repairs=len(done), repair_s=repair_s, open_stop_s=open_s, mtbf_s=mtbf,
                           mtbf_lower_bound_s=None if failures else operating_s, mttr_s=mttr, availability=avail,
                           issues=issues)


# -- MTTF --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemLife:
    """One item's operating time until its first failure (failed=True) or until observation ended (False)."""

    operating_s: float
    failed: bool


@dataclass(frozen=True)
class MttfResult:
    status: str
    items: int
    failures: int
    operating_s: float  # summed over all items
    mttf_s: float | None
    mttf_lower_bound_s: float | None  # total operating time when no item failed


def time_to_first_failure(states: Any, start_us: int, end_us: int, categories: Mapping[int, str], *,
                          max_gap_s: float | None = 300.0, min_failure_s: float = 0.0,
                          operating: Sequence[str] = (RUNNING,)) -> ItemLife:
    """Operating time from start_us to the item's first unplanned stop (or to end_us if none)."""
    a, b = _check_window(start_us, end_us)
    codes = _operating_codes(operating)
    tl, _ = build_timeline(states, categories, b, max_gap_s)
    first = next((x.start_us for x in unplanned_stops(tl, min_failure_s) if a <= x.start_us < b), None)
    return ItemLife(_time_in(tl, codes, a, b if first is None else first), first is not None)


def mttf(items: Sequence[ItemLife]) -> MttfResult:
    """Mean time to (first) failure over items, counting the operating time of the items that have not failed."""
    items = list(items)
    for i, it in enumerate(items):
        if not isinstance(it, ItemLife) or not (math.isfinite(it.operating_s) and it.operating_s >= 0):
            raise InvalidInput(f"items[{i}]: an ItemLife with a finite operating time >= 0")
    total = float(sum(it.operating_s for it in items))
    failures = sum(1 for it in items if it.failed)
    return MttfResult(status=STATUS_OK if failures else STATUS_INSUFFICIENT, items=len(items), failures=failures,
                      operating_s=total, mttf_s=total / failures if failures else None,
                      mttf_lower_bound_s=None if failures else total)


# -- quality -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QualityKpis:
    status: str  # "ok" or "insufficient_data" (nothing produced)
    total: float
    good: float
    bad: float
    rework: float | None
    defect_rate: float | None  # bad / total
    first_pass_yield: float | None
    fpy_basis: str  # "rework": (total - rework - bad) / total; "good_over_total": good / total


def _count(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) or v < 0:
        raise InvalidInput(f"{name} must be a finite number >= 0, not {v!r}")
    return float(v)


def quality_kpis(good: float, bad: float, rework: float | None = None) -> QualityKpis:
    """Defect rate and first-pass yield. `good` = units that left as good (reworked ones included), `bad` = units
    rejected (scrap), total = good + bad, `rework` = good units that needed rework first. Without the rework
    count, FPY falls back to good / total, which overstates it by the reworked share."""
    g, x = _count("good", good), _count("bad", bad)
    r = None if rework is None else _count("rework", rework)
    if r is not None and r > g:
        raise InvalidInput("rework cannot exceed good: a reworked unit is counted as good once it passes")
    total = g + x
    basis = "good_over_total" if r is None else "rework"
    if total == 0:
        return QualityKpis(STATUS_INSUFFICIENT, 0.0, g, x, r, None, None, basis)
    fpy = g / total if r is None else (total - r - x) / total
    return QualityKpis(STATUS_OK, total, g, x, r, x / total, fpy, basis)


def quality_kpis_from_counters(good: Any, bad: Any, start_us: int, end_us: int, *, rework: Any = None,
                               counter_modulus: float | None = None) -> QualityKpis:
    """quality_kpis over [start_us, end_us) from good/bad (and optionally rework) counter histories, read as for
    OEE (reset-aware increments booked at their sample's timestamp)."""
    a, b = _check_window(start_us, end_us)
    g = counter_increments(good, "good", counter_modulus).between(a, b)
    x = counter_increments(bad, "bad", counter_modulus).between(a, b)
    r = None if rework is None else counter_increments(rework, "rework", counter_modulus).between(a, b)
    if r is not None and r > g:
        r = g  # counters sampled at different instants can disagree by a few units at the window edges
    return quality_kpis(g, x, r)
