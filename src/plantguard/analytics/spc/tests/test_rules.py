"""Each Nelson rule: a constructed series (in sigmas from center) that fires exactly that rule, and a close one
that fires nothing (Nelson, JQT 16(4), 1984; rule definitions in rules.py)."""

import pytest

from plantguard.analytics.spc import IndividualsMR, Limits, NelsonRules, RuleSet
from plantguard.errors import InvalidInput

FIRES = {
    1: ([0.5, -0.5, 3.5], 2),
    2: ([0.2, 0.5, 0.3, 0.6, 0.2, 0.4, 0.3, 0.5, 0.2], 8),
    3: ([-0.5, -0.3, -0.1, 0.1, 0.3, 0.5], 5),
    4: ([0.5, -0.5] * 7, 13),
    5: ([0.0, 0.0, 2.5, 0.5, 2.5], 4),
    6: ([0.0, 1.5, 1.5, 0.5, 1.5, 1.5], 5),
    7: ([0.1, -0.1, -0.1] * 5, 14),
    8: ([1.5, 1.5, -1.5, -1.5, 1.5, 1.5, -1.5, -1.5], 7),
}
QUIET = {
    1: [0.5, -0.5, 2.9],
    2: [0.2, 0.5, 0.3, 0.6, 0.2, 0.4, 0.3, 0.5, -0.2],
    3: [-0.5, -0.3, -0.1, 0.1, 0.3, 0.3],
    4: [0.5, -0.5] * 6 + [0.5],
    5: [2.5, 0.5, 0.5, 2.5],
    6: [1.5, 1.5, 0.5, 0.5, 1.5, 1.5],
    7: [0.1, -0.1, -0.1] * 4 + [0.1, -0.1, 1.5],
    8: [1.5, 1.5, -1.5, -1.5, 1.5, 1.5, -1.5, -0.5],
}


def run(zs, rules="nelson"):
    eng = NelsonRules(rules)
    return [v for i, z in enumerate(zs) for v in eng.step(z, i, ts=1000 + i)]


@pytest.mark.parametrize("rule", range(1, 9))
def test_rule_fires_alone(rule):
    zs, at = FIRES[rule]
    events = run(zs)
    assert [(v.rule, v.index) for v in events] == [(rule, at)]
    v = events[0]
    n = RuleSet.of("nelson").span(rule)
    assert v.indices == tuple(range(at - n + 1, at + 1))
    assert v.timestamps == tuple(1000 + i for i in v.indices) and v.ts == 1000 + at


@pytest.mark.parametrize("rule", range(1, 9))
def test_near_miss_fires_nothing(rule):
    assert run(QUIET[rule]) == []


def test_western_electric_is_rules_1_5_6_and_a_run_of_8():
    eight = [0.2, 0.5, 0.3, 0.6, 0.2, 0.4, 0.3, 0.5]
    assert [(v.rule, v.index) for v in run(eight, "western_electric")] == [(2, 7)]
    assert run(eight, "nelson") == []
    assert RuleSet.of("western_electric").rules == (1, 2, 5, 6)
    # trend and stratification are not Western Electric rules
    assert run(FIRES[3][0], "western_electric") == [] and run(FIRES[7][0], "western_electric") == []


def test_explicit_rule_list_and_bad_spec():
    assert [v.rule for v in run(FIRES[5][0], [1, 5])] == [5]
    assert run(FIRES[5][0], [1]) == []
    with pytest.raises(InvalidInput):
        RuleSet.of([9])
    with pytest.raises(InvalidInput):
        RuleSet.of("acme")


def test_a_missing_reading_breaks_the_trend_but_not_the_run():
    chart = IndividualsMR(limits=Limits.given(0.0, 1.0))
    xs = [-0.5, -0.3, -0.1, None, 0.1, 0.3, 0.5]
    events = [v for x in xs for v in chart.update(x).violations]
    assert events == []          # 6 rising points, but a gap in between
    chart = IndividualsMR(limits=Limits.given(0.0, 1.0))
    xs = [0.2, 0.5, 0.3, None, 0.6, 0.2, 0.4, 0.3, 0.5, 0.2]
    assert [(v.rule, v.index) for x in xs for v in chart.update(x).violations] == [(2, 8)]
    assert chart.n_missing == 1
