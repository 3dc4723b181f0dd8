"""CSV importer: layouts, timestamp rules, exact line numbers for broken rows, idempotent import, and property
tests (round trip; garbage never crashes and is reported with its line)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantguard.connectors.csv import CsvOptions, import_csv, read_csv
from plantguard.errors import InvalidInput
from plantguard.runtime import Platform
from plantguard.testing.factories import small_plant, tag

T0 = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z in us
DEV = "s1/a1/l1/pump1/plc1"


def write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return p


def read_all(path, **kw):
    pts, ts, vals, qs, lines, problems = [], [], [], [], [], []
    for ch in read_csv(path, CsvOptions(**kw)):
        pts += ch.batch.points
        ts += ch.batch.ts.tolist()
        vals += ch.batch.value.tolist()
        qs += ch.batch.quality.tolist()
        lines += ch.lines.tolist()
        problems += ch.problems
    return pts, ts, vals, qs, lines, problems


def test_long_format_with_quality_epoch_units_and_offsets(tmp_path):
    p = write(tmp_path, "timestamp,point,value,quality\n"
                        "2025-01-01T00:00:00Z,p0,1.5,good\n"
                        "2025-01-01T01:00:01+01:00,p1,2,uncertain\n"
                        "1735689602,p0,3,BAD\n"          # epoch seconds
                        "1735689603000,p0,4,0\n"         # epoch milliseconds
                        "1735689604000000,p0,5,\n"       # epoch microseconds
                        "1735689605.5,p0,true,2\n")     # fractional seconds, boolean value
    pts, ts, vals, qs, lines, problems = read_all(p, point_prefix=DEV)
    assert problems == []
    assert pts == [f"{DEV}/p0", f"{DEV}/p1"] + [f"{DEV}/p0"] * 4
    assert ts == [T0, T0 + 1_000_000, T0 + 2_000_000, T0 + 3_000_000, T0 + 4_000_000, T0 + 5_500_000]
    assert vals == [1.5, 2.0, 3.0, 4.0, 5.0, 1.0]
    assert qs == [0, 1, 2, 0, 0, 2]
    assert lines == [2, 3, 4, 5, 6, 7]


def test_wide_format_skips_empty_cells_and_uses_the_time_zone(tmp_path):
    p = write(tmp_path, "Timestamp,p0,p1\n2025-07-01 02:00:00,1,\n2025-07-01 02:00:01,,2\n2025-07-01 02:00:02,3,4\n")
    pts, ts, vals, _, lines, problems = read_all(p, tz="Europe/Paris", point_prefix=DEV)
    assert problems == []
    base = 1_751_328_000_000_000  # 2025-07-01T00:00:00Z = 02:00 in Paris (CEST)
    got = sorted(zip(lines, pts, ts, vals))
    assert got == [(2, f"{DEV}/p0", base, 1.0), (3, f"{DEV}/p1", base + 1_000_000, 2.0),
                   (4, f"{DEV}/p0", base + 2_000_000, 3.0), (4, f"{DEV}/p1", base + 2_000_000, 4.0)]


def test_dst_gap_and_overlap_are_refused_with_the_reason(tmp_path):
    p = write(tmp_path, "timestamp,point,value\n"
                        "2025-03-30 01:59:59,p0,1\n"
                        "2025-03-30 02:30:00,p0,2\n"   # does not exist in Paris
                        "2025-10-26 02:30:00,p0,3\n"   # exists twice in Paris
                        "2025-10-26 03:30:00,p0,4\n")
    _, ts, _, _, lines, problems = read_all(p, tz="Europe/Paris")
    assert lines == [2, 5]
    assert ts == [1_743_296_399_000_000, 1_761_445_800_000_000]  # 00:59:59Z and 02:30Z
    assert [(x.line, x.reason.split(" ")[0]) for x in problems] == [(3, "nonexistent"), (4, "ambiguous")]


def test_local_time_without_tz_is_refused(tmp_path):
    p = write(tmp_path, "timestamp,point,value\n2025-01-01 00:00:00,p0,1\n")
    _, ts, _, _, _, problems = read_all(p)
    assert ts == [] and problems[0].line == 2 and "--tz" in problems[0].reason


def test_broken_rows_have_exact_line_numbers(tmp_path):
    text = ("timestamp,point,value\n"
            "2025-01-01T00:00:00Z,p0,1\n"
            "\n"                                           # blank: skipped, still counted
            "2025-01-01T00:00:01Z,p0,2,extra\n"            # 4
            "2025-01-01T00:00:02Z,p0\n"                    # 5
            "2025-01-01T00:00:03Z,p0,abc\n"                # 6
            "not a time,p0,4\n"                            # 7
            '"2025-01-01T00:00:05Z","p0","5"\n'            # quoted: fine
            'x,"unterminated,6\n'                          # 9
            "2025-01-01T00:00:07Z,,7\n"                    # 10: missing point
            "2025-01-01T00:00:08Z,p0,\n").encode() + b"\xff\xfe,p0,9\n" + b"2025-01-01T00:00:10Z,p0,10\r\n"
    p = write(tmp_path, text)
    for rows in (100_000, 2):  # the same answer whatever the chunking
        _, ts, vals, _, lines, problems = read_all(p, chunk_rows=rows)
        assert lines == [2, 8, 13] and vals == [1.0, 5.0, 10.0]
        assert [x.line for x in problems] == [4, 5, 6, 7, 9, 10, 11, 12]
        reasons = {x.line: x.reason for x in problems}
        assert reasons[4] == "expected 3 fields, found 4"
        assert reasons[6] == "value 'abc' is not a number"
        assert reasons[10] == "missing point name"
        assert reasons[11] == "missing value"
        assert "UTF-8" in reasons[12]


def test_header_problems_are_clear(tmp_path):
    with pytest.raises(InvalidInput, match="no timestamp column"):
        list(read_csv(write(tmp_path, "time,point,value\n"), CsvOptions()))
    with pytest.raises(InvalidInput, match="long format needs"):
        list(read_csv(write(tmp_path, "timestamp,point\n"), CsvOptions(format="long")))
    with pytest.raises(InvalidInput, match="appears twice"):
        list(read_csv(write(tmp_path, "timestamp,a,a\n"), CsvOptions()))
    with pytest.raises(ValueError, match="unknown time zone"):
        CsvOptions(tz="Mars/Base")


def test_delimiter_and_custom_columns(tmp_path):
    p = write(tmp_path, "\ufeffTime;Tag;Val\n2025-01-01T00:00:00Z;p0;1,5\n2025-01-01T00:00:01Z;p0;2.5\n")
    _, ts, vals, _, _, problems = read_all(p, delimiter=";", timestamp_column="time", point_column="tag", value_column="val")
    assert vals == [2.5] and [x.line for x in problems] == [2]  # a decimal comma is not a number


def test_import_is_idempotent_and_records_dead_letters(tmp_path):
    data_dir = tmp_path / "data"
    cfg = small_plant(2, data_dir=str(data_dir), alarms=False)
    rows = "".join(f"{T0 // 1000 + i * 1000},p{i % 2},{i}\n" for i in range(50))
    p = write(tmp_path, "timestamp,point,value\n" + rows + "1735689700000,p0,oops\n" + "1735689700000,p9,1\n")
    opt = CsvOptions(point_prefix=DEV, chunk_rows=7)
    platform = Platform(cfg, alarms=False)
    try:
        first = import_csv(platform.pipeline, p, opt)
        again = import_csv(platform.pipeline, p, opt)
        assert (first.rows, first.accepted, first.rejected, first.duplicates) == (52, 50, 2, 0)
        assert (again.accepted, again.rejected, again.duplicates) == (0, 2, 50)
        assert [(x.line, x.reason.split(" ")[0]) for x in first.problems] == [(52, "value"), (53, "unknown")]
        assert platform.store.counts()["raw"] == 50
        dead = platform.store.dead_letters(limit=10)
        assert any(d["payload"] == "line 52: 1735689700000,p0,oops" for d in dead)
        assert len(platform.services.telemetry.query_raw(tag(1), T0, T0 + 10**9).ts) == 25
    finally:
        platform.stop()


# -- properties -----------------------------------------------------------------------------------------------------
reading = st.tuples(
    st.sampled_from(["p0", "p1", "pump/speed", "a b", "x,y", 'q"uote']),
    st.integers(-(2**41), 2**45),  # us around the epoch, both signs, up to ~3084
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([0, 1, 2]),
    st.sampled_from(["iso_z", "iso_offset", "epoch_ms", "epoch_s"]),
)


def _render_ts(ts_us: int, style: str) -> tuple[str, int]:
    """Text for a timestamp and the microseconds it denotes (epoch styles round to their unit)."""
    from datetime import datetime, timedelta, timezone

    dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ts_us)
    if style == "iso_z":
        return dt.isoformat().replace("+00:00", "Z"), ts_us
    if style == "iso_offset":
        return dt.astimezone(timezone(timedelta(hours=-5, minutes=-30))).isoformat(), ts_us
    if style == "epoch_ms":
        ms = ts_us // 1000
        if abs(ms) < 10**11:  # would read as seconds: that is the documented rule, keep the test inside it
            ms = ms + (10**11 if ms >= 0 else -(10**11))
        return str(ms), ms * 1000
    s = ts_us // 1_000_000
    if abs(s) >= 10**11:
        s = s % (10**11 - 1)
    return str(s), s * 1_000_000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(reading, max_size=40), st.integers(1, 50))
def test_round_trip(tmp_path, rows, chunk_rows):
    expect = []
    path = tmp_path / "rt.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "point", "value", "quality"])
        for name, ts, value, q, style in rows:
            text, us = _render_ts(ts, style)
            w.writerow([text, name, repr(value), ["good", "uncertain", "bad"][q]])
            expect.append((f"{DEV}/{name}", us, value, q))
    pts, ts, vals, qs, lines, problems = read_all(path, point_prefix=DEV, chunk_rows=chunk_rows)
    assert problems == []
    assert list(zip(pts, ts, vals, qs)) == expect
    assert lines == list(range(2, 2 + len(rows)))


line_text = st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(line_text, st.just("2025-01-01T00:00:00Z,p0,1")), max_size=30), st.sampled_from(["long", "wide", "auto"]))
def test_garbage_never_crashes_and_is_reported_by_line(tmp_path, lines, fmt):
    path = tmp_path / "junk.csv"
    path.write_bytes(("timestamp,point,value\n" + "\n".join(lines) + "\n").encode("utf-8"))
    n_lines = len(lines)
    seen_rows = 0
    problem_lines, reading_lines = [], []
    for ch in read_csv(path, CsvOptions(format=fmt, tz="UTC")):
        seen_rows += ch.rows
        problem_lines += [p.line for p in ch.problems]
        reading_lines += ch.lines.tolist()
        assert all(isinstance(p.reason, str) and p.reason for p in ch.problems)
        assert len(ch.dead) == len(ch.problems)
    assert all(2 <= ln <= n_lines + 1 for ln in problem_lines + reading_lines)
    if fmt != "wide":  # long: each non-blank line is exactly one reading or one problem
        assert sorted(problem_lines + reading_lines) == sorted(set(problem_lines + reading_lines))
        assert len(problem_lines) + len(reading_lines) == seen_rows
