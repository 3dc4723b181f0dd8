"""Shift calendar: shifts across midnight, DST changes in Europe/Paris, production days, hours, validation."""

import pytest

from plantguard.analytics.shifts import Period, ShiftCalendar
from plantguard.errors import ConfigError, InvalidInput
from plantguard.timeutil import to_us

H = 3600
THREE = [("A", "06:00", "14:00"), ("B", "14:00", "22:00"), ("C", "22:00", "06:00")]


def _hours(periods):
    return [(p.label, p.duration_s / H) for p in periods]


def test_three_shifts_on_an_ordinary_day():
    cal = ShiftCalendar("Europe/Paris", THREE, day_start="first_shift")
    ps = cal.periods(to_us("2024-06-10T06:00:00+02:00"), to_us("2024-06-11T06:00:00+02:00"), by="shift")
    assert _hours(ps) == [("2024-06-10 A", 8), ("2024-06-10 B", 8), ("2024-06-10 C", 8)]
    assert ps[2].start_us == to_us("2024-06-10T22:00:00+02:00") and ps[2].end_us == to_us("2024-06-11T06:00:00+02:00")
    assert all(p.complete and p.kind == "shift" for p in ps)


def test_spring_forward_night_shift_lasts_7_hours():
    # 31 March 2024, 02:00 CET -> 03:00 CEST: the night shift from 30 March 22:00 to 31 March 06:00 is 7 h long
    cal = ShiftCalendar("Europe/Paris", THREE, day_start="first_shift")
    ps = cal.periods(to_us("2024-03-30T06:00:00+01:00"), to_us("2024-03-31T06:00:00+02:00"), by="shift")
    assert _hours(ps) == [("2024-03-30 A", 8), ("2024-03-30 B", 8), ("2024-03-30 C", 7)]
    days = cal.periods(to_us("2024-03-30T06:00:00+01:00"), to_us("2024-03-31T06:00:00+02:00"), by="day")
    assert _hours(days) == [("2024-03-30", 23)]


def test_fall_back_night_shift_lasts_9_hours():
    # 27 October 2024, 03:00 CEST -> 02:00 CET
    cal = ShiftCalendar("Europe/Paris", THREE)
    ps = cal.periods(to_us("2024-10-26T22:00:00+02:00"), to_us("2024-10-27T06:00:00+01:00"), by="shift")
    assert _hours(ps) == [("2024-10-26 C", 9)]
    days = cal.periods(to_us("2024-10-27T00:00:00+02:00"), to_us("2024-10-28T00:00:00+01:00"), by="day")
    assert _hours(days) == [("2024-10-27", 25)]


def test_hours_are_local_wall_clock_hours_through_dst_changes():
    cal = ShiftCalendar("Europe/Paris")
    autumn = cal.periods(to_us("2024-10-27T01:00:00+02:00"), to_us("2024-10-27T04:00:00+01:00"), by="hour")
    assert [p.label for p in autumn] == ["2024-10-27T01:00+02:00", "2024-10-27T02:00+02:00",
                                         "2024-10-27T02:00+01:00", "2024-10-27T03:00+01:00"]
    spring = cal.periods(to_us("2024-03-31T01:00:00+01:00"), to_us("2024-03-31T04:00:00+02:00"), by="hour")
    assert [p.label for p in spring] == ["2024-03-31T01:00+01:00", "2024-03-31T03:00+02:00"]
    assert all(p.duration_s == H for p in autumn + spring)


def test_shift_starting_in_the_skipped_hour_starts_when_the_clock_jumps():
    cal = ShiftCalendar("Europe/Paris", [("X", "02:30", "03:15")])
    ps = cal.periods(to_us("2024-03-31T00:00:00+01:00"), to_us("2024-04-01T00:00:00+02:00"), by="shift")
    assert len(ps) == 1 and ps[0].start_us == to_us("2024-03-31T03:00:00+02:00") and ps[0].duration_s == 15 * 60


def test_day_start_first_shift_and_early_shift_belongs_to_previous_production_day():
    cal = ShiftCalendar("UTC", [("day", "06:00", "18:00"), ("late", "02:00", "06:00")], day_start="06:00")
    ps = cal.periods(to_us("2024-04-01T00:00:00Z"), to_us("2024-04-02T00:00:00Z"), by="shift")
    assert [p.label for p in ps] == ["2024-03-31 late", "2024-04-01 day"]
    days = cal.periods(to_us("2024-04-01T00:00:00Z"), to_us("2024-04-02T00:00:00Z"), by="day")
    assert [(p.label, p.complete) for p in days] == [("2024-03-31", False), ("2024-04-01", False)]


def test_gaps_between_shifts_are_allowed_and_clipping_marks_partial_periods():
    cal = ShiftCalendar("UTC", [("early", "06:00", "14:00"), ("late", "14:00", "22:00")])
    ps = cal.periods(to_us("2024-04-01T10:00:00Z"), to_us("2024-04-02T00:00:00Z"))
    assert [(p.label, p.duration_s / H, p.complete) for p in ps] == [("2024-04-01 early", 4, False),
                                                                     ("2024-04-01 late", 8, True)]
    full = cal.periods(to_us("2024-04-01T10:00:00Z"), to_us("2024-04-02T00:00:00Z"), clip=False)
    assert full[0].duration_s == 8 * H


def test_invalid_configuration_reports_every_problem():
    with pytest.raises(ConfigError) as e:
        ShiftCalendar("Mars/Olympus", [("A", "06:00", "15:00"), ("B", "14:00", "22:00"), ("A", "25:00", "01:00")],
                      day_start="noon")
    text = str(e.value)
    assert "time zone" in text and "overlap" in text and "duplicate" in text and "HH:MM" in text and "day_start" in text


def test_overlap_across_midnight_is_detected():
    with pytest.raises(ConfigError):
        ShiftCalendar("UTC", [("C", "22:00", "06:00"), ("early", "05:00", "13:00")])


def test_invalid_requests():
    cal = ShiftCalendar("UTC", THREE)
    with pytest.raises(InvalidInput):
        cal.periods(10, 10)
    with pytest.raises(InvalidInput):
        cal.periods(0, 10, by="week")
    with pytest.raises(InvalidInput):
        ShiftCalendar("UTC").periods(0, 10, by="shift")
    with pytest.raises(InvalidInput):
        Period("x", 5, 5)
