"""The JSON payload parser shared by HTTP and MQTT: fast path and slow path agree; garbage never crashes."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.domain.readings import NO_TS
from plantguard.errors import InvalidInput
from plantguard.ingest.parse import parse_payload

T0 = 1_763_700_000_000  # ms


def test_short_keys_fast_path():
    body = orjson.dumps([{"p": "a", "t": T0, "v": 1.5}, {"p": "b", "t": T0 + 1, "v": True}])
    b, dead = parse_payload(body, "mqtt", prefix="s/a/l/x/d")
    assert dead == []
    assert b.prefix == "s/a/l/x/d" and b.points == ["a", "b"]
    assert [b.tag(0), b.tag(1)] == ["s/a/l/x/d/a", "s/a/l/x/d/b"]
    assert b.ts.tolist() == [T0 * 1000, (T0 + 1) * 1000]
    assert b.value.tolist() == [1.5, 1.0]
    assert (b.src_ts == NO_TS).all() and (b.quality == 0).all()


def test_long_keys_iso_quality_and_source_ts():
    body = orjson.dumps({"readings": [
        {"point": "a", "ts": "2026-11-21T10:00:00+01:00", "value": 3, "quality": "uncertain", "source_ts": "2026-11-21T08:59:59.5Z"},
    ]})
    b, dead = parse_payload(body, "http")
    assert dead == []
    assert b.ts[0] == 1_795_251_600_000_000
    assert b.quality[0] == 1
    assert b.src_ts[0] == 1_795_251_599_500_000


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"point": "a", "ts": "2026-11-21T10:00:00", "value": 1}, "no time zone"),
        ({"point": "a", "value": 1}, "missing 'ts'"),
        ({"point": "a", "ts": T0, "value": "hot"}, "must be a number"),
        ({"point": "a", "ts": T0, "value": None}, "must be a number"),
        ({"point": "", "ts": T0, "value": 1}, "non-empty string"),
        ({"point": "a", "ts": T0, "value": 1, "quality": "great"}, "quality"),
        ({"point": "a", "ts": "yesterday", "value": 1}, "invalid timestamp"),
        (17, "not a JSON object"),
    ],
)
def test_bad_rows_become_dead_letters_and_others_survive(row, reason):
    good = {"point": "ok", "ts": T0, "value": 2.0}
    b, dead = parse_payload(orjson.dumps([good, row, good | {"ts": T0 + 5}]), "http")
    assert b.points == ["ok", "ok"]
    assert len(dead) == 1 and reason in dead[0].reason


@pytest.mark.parametrize("raw", [b"{", b"", b"nope", b'"text"', b"{\"readings\": 5}", b"[1,"])
def test_unreadable_payloads_raise_invalid_input(raw):
    with pytest.raises(InvalidInput):
        parse_payload(raw, "http")


def test_oversize_payload_rejected():
    with pytest.raises(InvalidInput, match="exceeds the limit"):
        parse_payload(b"[" + b" " * 2000 + b"]", "http", max_bytes=1024)


readings = st.lists(
    st.fixed_dictionaries({
        "p": st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=12),
        "t": st.integers(0, 4_000_000_000_000),
        "v": st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(2**40), 2**40),
    }),
    max_size=40,
)


@given(readings)
@settings(max_examples=200, deadline=None)
def test_fast_and_slow_paths_agree(rows):
    fast, dead = parse_payload(orjson.dumps(rows), "x")
    # adding a harmless quality key forces the per-row path
    slow, dead2 = parse_payload(orjson.dumps([r | {"q": 0} for r in rows]), "x")
    assert dead == dead2 == []
    assert fast.points == slow.points == [r["p"] for r in rows]
    assert np.array_equal(fast.ts, slow.ts)
    assert np.array_equal(fast.value, slow.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(["p", "t", "v", "q", "point", "ts", "value", "x"]), c, max_size=5),
    max_leaves=20,
)


@given(st.lists(json_values, max_size=10))
@settings(max_examples=300, deadline=None)
def test_garbage_never_crashes(rows):
    try:
        b, dead = parse_payload(orjson.dumps(rows), "x")
    except InvalidInput:
        return
    assert len(b) + len(dead) == len(rows)
    assert all(math.isfinite(v) for v in b.value)


@pytest.mark.parametrize("t", [2**63, -(2**63), 1e300, 9_300_000_000_000_000])
def test_absurd_numeric_timestamps_are_dead_letters(t):
    b, dead = parse_payload(orjson.dumps([{"p": "a", "t": t, "v": 1}, {"p": "b", "t": T0, "v": 1}]), "x")
    assert b.points == ["b"] and len(dead) == 1 and "timestamp" in dead[0].reason


@pytest.mark.parametrize("row", [
    {"p": "a", "t": T0, "v": "1.5"},           # text is not a number, even when it looks like one
    {"p": "a", "t": str(T0), "v": 1.5},        # nor is a timestamp given as text digits
    {"p": "a", "t": True, "v": 1.5},
    {"p": "a", "t": T0, "v": [1]},
    {"p": "a", "t": T0, "v": None},
])
def test_fast_path_never_accepts_what_the_row_path_rejects(row):
    b, dead = parse_payload(orjson.dumps([{"p": "ok", "t": T0, "v": 1.0}, row]), "x")
    assert b.points == ["ok"] and len(dead) == 1


def test_columns_bulk_conversion_isolates_a_bad_message():
    from plantguard.ingest.parse import Columns, columns_or_rows, parse_columns

    good = parse_columns(orjson.dumps([{"p": "a", "t": T0, "v": 1.0}]), "mqtt", prefix="d1")
    bad = parse_columns(orjson.dumps([{"p": "b", "t": T0, "v": "x"}, {"p": "c", "t": T0, "v": 2}]), "mqtt", prefix="d1")
    assert isinstance(good, Columns) and isinstance(bad, Columns)
    b, dead = columns_or_rows([good, bad], "mqtt")
    assert [b.tag(i) for i in range(len(b))] == ["d1/a", "d1/c"] and len(dead) == 1 and dead[0].point == "d1/b"
