"""Maturity scoring reproducible from fixed evidence; missing evidence and invalid attestations never count as met."""

from plantguard.maturity.model import AREA_IDS, AREAS, INDICATORS, score

AT = 1_800_000_000_000_000


def measured(**values):
    return {k: {"status": "measured", "value": v} for k, v in values.items()}


FULL = measured(**{"data.completeness_median": 99, "data.complete_share": 97, "improvement.verified.data": 2})


def test_levels_climb_only_while_every_indicator_below_is_met():
    s = score(FULL, {}, at=AT)["data"]
    assert s.level == 2  # level 3 needs the data-ownership attestation as well
    att = {"data.ownership": {"signer": "ann", "expires_at": AT + 1, "statement": "owners named"}}
    assert score(FULL, att, at=AT)["data"].level == 5
    worse = {**FULL, **measured(**{"data.complete_share": 90})}
    assert score(worse, att, at=AT)["data"].level == 3   # 90 % >= 80 (L3) but < 95 (L4)


def test_missing_evidence_is_never_met():
    ev = {**FULL, "data.completeness_median": {"status": "missing", "value": None, "reason": "no data"}}
    s = score(ev, {}, at=AT)["data"]
    assert s.level == 1
    assert [i.status for i in s.indicators if i.level == 2] == ["missing"]
    assert s.next_actions and "start measuring data.completeness_median" in s.next_actions[0]
    assert all(v.level == 1 for k, v in score({}, {}, at=AT).items())


def test_attestations_need_a_signer_and_must_not_have_expired():
    for bad in ({"signer": "", "expires_at": AT + 1}, {"signer": "ann", "expires_at": AT}, {"signer": "  ", "expires_at": AT + 10}):
        s = score(FULL, {"data.ownership": bad}, at=AT)["data"]
        assert s.level == 2, bad


def test_same_evidence_same_result_and_gaps():
    ev = measured(**{"quality.spc_coverage": 50, "quality.alarm_rate": 1.5, "predictive.coverage": 90})
    a = score(ev, {}, at=AT, targets={"quality": 4, "predictive": 3})
    b = score(ev, {}, at=AT, targets={"quality": 4, "predictive": 3})
    assert {k: v.as_dict() for k, v in a.items()} == {k: v.as_dict() for k, v in b.items()}
    assert a["quality"].level == 2 and a["quality"].gap == 2
    assert a["predictive"].level == 3 and a["predictive"].gap == 0
    assert any("now 50, needs >= 80" in x for x in a["quality"].next_actions)


def test_every_area_has_indicators_for_levels_2_to_5_and_unique_ids():
    assert set(AREA_IDS) == {"data", "quality", "predictive", "cyber", "continuity", "people", "integration", "improvement"}
    for a in AREAS:
        assert {i.level for i in a.indicators} == {2, 3, 4, 5}, a.id
    assert len(INDICATORS) == sum(len(a.indicators) for a in AREAS)
