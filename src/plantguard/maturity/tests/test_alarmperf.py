"""Alarm-system performance on hand-built alarm histories with known rates, floods, chattering and standing alarms."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.domain.alarms import HISTORY_EVENTS, AlarmHistory
from plantguard.maturity.alarmperf import PerfSettings, report

S = 1_000_000
M = 60 * S
H = 3600 * S
DAY = 24 * H
T0 = 1_700_000_000 * S - (1_700_000_000 * S) % DAY


def history(events, start=T0, end=T0 + DAY, standing=None):
    """events: (alarm id, seconds after start, event name[, while shelved])."""
    events = sorted(events, key=lambda e: e[1])
    names = sorted({e[0] for e in events})
    idx = {n: i for i, n in enumerate(names)}
    return AlarmHistory(start, end, names, np.array([idx[e[0]] for e in events], np.int32),
                        np.array([start + int(e[1] * S) for e in events], np.int64),
                        np.array([HISTORY_EVENTS.index(e[2]) for e in events], np.int8),
                        np.array([bool(e[3]) if len(e) > 3 else False for e in events], bool), standing or {})


def pulses(alarm, times_s, width_s=30):
    out = []
    for t in times_s:
        out += [(alarm, t, "raised"), (alarm, t + width_s, "returned")]
    return out


def test_known_rate_per_10_minutes_and_per_day():
    # 144 alarms spread evenly over a day: exactly 1 per 10 minutes, 144 a day, no floods
    ev = pulses("s/a/l/x/d/p0:HI", [i * 600 + 100 for i in range(144)], width_s=60)
    r = report(history(ev), priorities={"s/a/l/x/d/p0:HI": "low"})["positions"]["all"]
    assert r["alarms"] == 144
    assert r["per_10min"]["value"] == 1.0 and r["per_10min"]["verdict"] == "acceptable"
    assert r["per_day"]["value"] == 144.0
    assert r["flood_percent"]["value"] == 0 and r["peak_10min"]["value"] == 1
    assert r["chattering"]["value"] == 0 and r["fleeting"]["value"] == 0
    assert r["priorities"]["low"]["percent"] == 100.0
    assert r["top"][0] == {"alarm": "s/a/l/x/d/p0:HI", "count": 144, "percent": 100.0}


def test_floods_are_counted_per_10_minute_period():
    # 3 periods with 11 alarms each (floods), one period with exactly 10 (not a flood: more than 10)
    ev = []
    for k, (period, n) in enumerate([(0, 11), (5, 11), (17, 11), (30, 10)]):
        for i in range(n):
            ev += pulses(f"s/a/l/x/d/p{i}:HI", [period * 600 + 10 + i * 40], width_s=20)
    r = report(history(ev), priorities={})["positions"]["all"]
    assert r["flood_periods"] == 3 and r["periods_10min"] == 144
    assert r["flood_percent"]["value"] == round(100 * 3 / 144, 3)
    assert r["peak_10min"]["value"] == 11
    assert r["daily"]["flood_periods"] == [3]


def test_chattering_and_fleeting_and_their_rules():
    chat = pulses("s/a/l/x/d/p0:HI", [1000, 1015, 1030], width_s=2)        # 3 raises within 30 s, each 2 s long
    slow = pulses("s/a/l/x/d/p1:HI", [5000, 9000], width_s=3)              # fleeting (3 s < 5 s), not chattering
    ok = pulses("s/a/l/x/d/p2:HI", [20000], width_s=600)
    r = report(history(chat + slow + ok), priorities={})["positions"]["all"]
    assert r["chattering"]["value"] == 1
    assert r["fleeting"]["value"] == 2  # p0 (2 s) and p1 (3 s)
    bad = {b["alarm"]: b["rules"] for b in r["bad_actors"]}
    assert any(x.startswith("chattering") for x in bad["s/a/l/x/d/p0:HI"])
    assert any(x.startswith("fleeting") for x in bad["s/a/l/x/d/p1:HI"])
    assert not any(x.startswith("chattering") for x in bad["s/a/l/x/d/p1:HI"])


def test_fleeting_is_judged_in_time_of_the_points_period():
    # a 60 s excursion of a point sampled every minute is one sample: not fleeting at 5 s, fleeting at 2 periods
    ev = pulses("s/a/l/x/d/slow:HI", [1000], width_s=60) + pulses("s/a/l/x/d/fast:HI", [3000], width_s=60)
    r = report(history(ev), priorities={}, periods={"s/a/l/x/d/slow": 60.0, "s/a/l/x/d/fast": 1.0})["positions"]["all"]
    assert r["fleeting"]["value"] == 1
    assert [b["alarm"] for b in r["bad_actors"] if any("fleeting" in x for x in b["rules"])] == ["s/a/l/x/d/slow:HI"]


def test_standing_alarms_from_before_the_window_and_within_it():
    ev = [("s/a/l/x/d/p0:HI", 100, "raised")] + pulses("s/a/l/x/d/p1:HI", [200], 60)
    start = T0 + DAY
    h = history([(a, t, e) for a, t, e in ev], start=start, end=start + 2 * DAY,
                standing={"s/a/l/x/d/p9:LO": start - 3 * DAY, "s/a/l/x/d/p8:LO": start - H})
    r = report(h, priorities={})["positions"]["all"]
    # p9 stood 3 days before and all window; p8 raised 1 h before the window is 25 h old at the end of day 1;
    # p0 raised 100 s into the window is 100 s short of 24 h then, and stands by the end of day 2
    assert set(r["stale"]) == {"s/a/l/x/d/p9:LO", "s/a/l/x/d/p0:HI", "s/a/l/x/d/p8:LO"}
    assert r["daily"]["stale"] == [2, 3]
    assert "s/a/l/x/d/p1:HI" not in r["stale"]


def test_shelved_and_suppressed_are_counted_and_not_annunciated():
    ev = [("s/a/l/x/d/p0:HI", 10, "raised"), ("s/a/l/x/d/p0:HI", 20, "shelved"), ("s/a/l/x/d/p0:HI", 30, "returned"),
          ("s/a/l/x/d/p0:HI", 40, "raised", True), ("s/a/l/x/d/p0:HI", 50, "returned"), ("s/a/l/x/d/p0:HI", 60, "unshelved")]
    r = report(history(ev), priorities={"s/a/l/x/d/p0:HI": "high"})["positions"]["all"]
    assert r["alarms"] == 1
    assert r["shelved"] == {"events": 1, "alarms": 1} and r["suppressed"] == {"occurrences": 1, "alarms": 1}
    assert r["high_urgent_percent"]["value"] == 100.0 and r["high_urgent_percent"]["verdict"] == "overloaded"


def test_operator_positions_split_the_alarms():
    ev = pulses("s/a/l1/x/d/p0:HI", [100, 5000]) + pulses("s/a/l2/x/d/p0:HI", [200]) + pulses("s/b/l9/x/d/p0:HI", [300])
    r = report(history(ev), priorities={}, positions={"line-1": ["s/a/l1"], "area-a": ["s/a"]})["positions"]
    assert r["all"]["alarms"] == 4 and r["line-1"]["alarms"] == 2 and r["area-a"]["alarms"] == 1
    assert r["unassigned"]["alarms"] == 1   # the first matching position takes an alarm


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 86_399), st.integers(1, 3600)), max_size=120))
def test_figures_are_consistent_on_any_history(raw):
    ev = []
    for a, t, w in raw:
        ev += pulses(f"s/a/l/x/d/p{a}:HI", [t], w)
    r = report(history(ev), priorities={}, settings=PerfSettings())["positions"]["all"]
    assert r["alarms"] == len(raw)
    assert sum(r["daily"]["alarms"]) == len(raw)
    assert r["peak_10min"]["value"] <= len(raw)
    assert 0 <= r["flood_percent"]["value"] <= 100 and 0 <= r["top10_percent"]["value"] <= 100
    assert r["chattering"]["value"] <= 6 and r["fleeting"]["value"] <= 6
