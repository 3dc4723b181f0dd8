"""SPC alarm defaults: false alarm rate in control, and alarm delay after a mean shift.

The analytics processor records every rule violation as an event, and raises the SPC alarm when at least
`alarm_min_points` of the last `clear_after` readings violated one of `alarm_rules` (it clears after
`clear_after` readings without one). This script runs SpcBank (all Nelson rules, EWMA, CUSUM with
reset_on_signal, baseline 100: the processor's settings) over seeded N(0, 1) streams and applies that hysteresis
per reading, counting violations the way the analytics processor (plant_analytics/spc.py) does: individuals-chart rule r is "nelson-r",
cusum_upper / cusum_lower are "cusum", the others go by chart name ("ewma", "moving_range").

  false alarms: alarms raised per 10,000 in-control readings after the baseline (--slots x --readings);
  delay:        readings after a step of 1, 2 or 6 sigma (at reading 600) up to and including the one that
                raises the alarm; the median over --shift-slots streams, and the share alarmed within 400.
                Streams whose alarm is already active (a false alarm) when the step comes are left out.

The processor evaluates the hysteresis once per slot and batch (at the slot's newest reading), so with several
readings of a point per batch an alarm can be raised up to one batch later than here.

    python bench/spc_alarm_rate.py [--slots 200] [--readings 10000] [--shift-slots 500] [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np

from common import print_machine, record
from plantguard.analytics.spc.bank import CHARTS, IND, MR, EWMA_C, SlotSettings, SpcBank

BASE = 100
T_SHIFT, AFTER = 600, 400
NELSON = [f"nelson-{r}" for r in range(1, 9)]
CONFIGS = [  # (label, alarm rules, alarm_min_points, clear_after)
    ("default: nelson-1 + cusum, 4 of 16", ["nelson-1", "cusum"], 4, 16),
    ("nelson-1 + cusum, 3 of 25", ["nelson-1", "cusum"], 3, 25),
    ("nelson-1 + ewma + cusum, 3 of 25", ["nelson-1", "ewma", "cusum"], 3, 25),
    ("all Nelson rules + ewma + cusum, 3 of 25", NELSON + ["ewma", "cusum"], 3, 25),
    ("all Nelson rules + ewma + cusum, 5 of 25", NELSON + ["ewma", "cusum"], 5, 25),
    ("nelson-1 alone, 1 of 1 (a plain Shewhart alarm)", ["nelson-1"], 1, 1),
]
GROUPS = NELSON + ["moving_range", "ewma", "cusum"]


def violations(slots: int, n: int, shift: float, seed: int) -> dict[str, np.ndarray]:
    """Per violation group, a (slots, n) bool matrix of the readings that violated it."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, slots))  # time-major, as a plant's readings arrive
    if shift:
        v[T_SHIFT:] += shift
    bank = SpcBank()
    for _ in range(slots):
        bank.add(SlotSettings(baseline=BASE, reset_on_signal=True))
    t = np.repeat(np.arange(n, dtype=np.int64), slots)
    s = np.tile(np.arange(slots, dtype=np.int64), n)
    out = {g: np.zeros((slots, n), bool) for g in GROUPS}
    step = 200  # readings per slot per call, like a stream of batches
    for lo in range(0, n, step):
        sel = slice(lo * slots, min(n, lo + step) * slots)
        r = bank.process(s[sel], t[sel] * 1_000_000, v[lo:lo + step].ravel())
        i = r.event_ts // 1_000_000
        for chart, rule, grp in ([(IND, k, f"nelson-{k}") for k in range(1, 9)]
                                 + [(MR, None, "moving_range"), (EWMA_C, None, "ewma"), (3, None, "cusum"), (4, None, "cusum")]):
            m = r.event_chart == chart
            if rule is not None:
                m &= r.event_rule == rule
            out[grp][r.event_slot[m], i[m]] = True
    assert CHARTS[3].startswith("cusum") and CHARTS[4].startswith("cusum")
    return out


def alarms(viol: dict[str, np.ndarray], rules: list[str], minp: int, clear: int) -> tuple[np.ndarray, np.ndarray]:
    """(slots, n) bools: the reading raised the alarm, the alarm is active after the reading (the processor's
    hysteresis, evaluated per reading)."""
    x = np.zeros_like(next(iter(viol.values())))
    for r in rules:
        x |= viol[r]
    slots, n = x.shape
    c = np.cumsum(x, axis=1, dtype=np.int32)
    win = c - np.concatenate([np.zeros((slots, clear), np.int32), c[:, :-clear]], axis=1)  # violations in the last `clear`
    active = np.zeros(slots, bool)
    raised = np.zeros((slots, n), bool)
    on = np.zeros((slots, n), bool)
    for i in range(BASE, n):
        w = win[:, i]
        up = ~active & (w >= minp)
        active = np.where(active, w > 0, up)
        raised[:, i] = up
        on[:, i] = active
    return raised, on


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slots", type=int, default=200)
    ap.add_argument("--readings", type=int, default=10_000)
    ap.add_argument("--shift-slots", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="50 x 4000 in control, 100 streams per shift")
    a = ap.parse_args()
    if a.quick:
        a.slots, a.readings, a.shift_slots = 50, 4000, 100
    m = print_machine()
    ic = violations(a.slots, a.readings, 0.0, seed=1)
    monitored = a.slots * (a.readings - BASE)
    shifted = {d: violations(a.shift_slots, T_SHIFT + AFTER, d, seed=10 + int(d)) for d in (1.0, 2.0, 6.0)}
    print(f"in control: {a.slots} streams x {a.readings:,} readings ({monitored:,} monitored after the baseline of {BASE}); "
          f"shifts: {a.shift_slots} streams per size, step at reading {T_SHIFT}")
    rates = {g: ic[g][:, BASE:].sum() / monitored * 10_000 for g in GROUPS}
    print("violations per 10,000 in-control readings, by group: " + ", ".join(f"{g} {r:.0f}" for g, r in rates.items()))
    rows = []
    for label, rules, minp, clear in CONFIGS:
        fa = alarms(ic, rules, minp, clear)[0].sum() / monitored * 10_000
        row = {"config": label, "alarm_rules": rules, "alarm_min_points": minp, "clear_after": clear,
               "false_alarms_per_10k": round(float(fa), 3)}
        for d, viol in shifted.items():
            raised, on = alarms(viol, rules, minp, clear)
            free = ~on[:, T_SHIFT - 1]  # streams already in a (false) alarm when the shift comes are left out
            r = raised[free, T_SHIFT:]
            hit = r.any(axis=1)
            row[f"left_out_{d:g}sigma"] = int((~free).sum())
            delay = np.where(hit, r.argmax(axis=1) + 1, np.inf)
            row[f"delay_{d:g}sigma_median"] = float(np.median(delay))
            row[f"alarmed_{d:g}sigma_within_{AFTER}"] = round(float(hit.mean()), 3)
        rows.append(row)
        print(f"{label:50s} false alarms {fa:6.2f} per 10k | median delay 1σ {row['delay_1sigma_median']:>5g} "
              f"({row[f'alarmed_1sigma_within_{AFTER}']:.0%} within {AFTER}), 2σ {row['delay_2sigma_median']:g}, "
              f"6σ {row['delay_6sigma_median']:g} readings")
    record("spc_alarm_rate", {"slots": a.slots, "readings": a.readings, "shift_slots": a.shift_slots, "baseline": BASE,
                              "violations_per_10k": {g: round(float(r), 1) for g, r in rates.items()}, "configs": rows,
                              "machine": m})


if __name__ == "__main__":
    main()
