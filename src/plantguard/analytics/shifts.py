"""Shift calendar: the plant's shifts, days and hours as UTC time intervals, in the site's IANA time zone.

    cal = ShiftCalendar(tz="Europe/Paris",
                        shifts=[("A", "06:00", "14:00"), ("B", "14:00", "22:00"), ("C", "22:00", "06:00")],
                        day_start="first_shift")
    cal.periods(start_us, end_us, by="shift")   # [Period("2024-03-31 A", ...), ...]

Semantics (docs/analytics/oee.md has the long form):

- Shifts are bounded by wall-clock times. A shift whose end is not after its start crosses midnight (C above);
  start == end is a 24 h shift. On the days clocks change, a shift that spans the change lasts 7 h or 9 h of
  real time instead of 8 h: the clock on the wall decides when people change over, not the elapsed time.
- A wall time that does not exist (skipped by the spring-forward change, e.g. 02:30 in Paris on the last Sunday
  of March) is taken as the instant the clock jumps (03:00 CEST). A wall time that occurs twice (autumn) is
  taken at its first occurrence. The end of one shift and the start of the next are the same wall time, so they
  always map to the same instant: no DST change creates a gap or an overlap between shifts.
- Overlapping shifts are a ConfigError. Gaps between shifts are allowed (a plant running two shifts): time
  outside every shift belongs to no shift period, but it does belong to its day and hour periods.
- Production days start at `day_start`: "00:00" (local midnight, the default), any other "HH:MM", or
  "first_shift" (the start of the first shift listed). A day is labelled with the local date it starts on, and a
  shift with the production day it starts in (with day_start="06:00", a 02:00-06:00 shift starting on 1 April
  belongs to production day 31 March).
- Hours are local wall-clock hours, each one hour of real time: on the autumn change there are two 02:00 hours
  (labelled with their UTC offsets), on the spring change there is no 02:00 hour.
- `periods()` returns every period that overlaps [start_us, end_us), cut to that window when `clip` is true
  (the default); `Period.complete` tells whether a period was cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from plantguard.errors import ConfigError, ConfigProblem, InvalidInput

US = 1_000_000
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
BY = ("shift", "day", "hour")
MAX_PERIODS = 200_000  # a request for more periods than this is a mistake (years of hours), not a report


@dataclass(frozen=True)
class Period:
    """One reporting interval [start_us, end_us) in epoch microseconds UTC."""

    label: str
    start_us: int
    end_us: int
    kind: str = "custom"  # "shift", "day", "hour" or "custom"
    complete: bool = True  # False when cut by the requested window

    def __post_init__(self) -> None:
        if self.end_us <= self.start_us:
            raise InvalidInput(f"period {self.label!r}: end must be after start")

    @property
    def duration_s(self) -> float:
        return (self.end_us - self.start_us) / US


def _minutes(text: str) -> int:
    m = _HHMM.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a time of day 'HH:MM' (00:00 to 23:59, or 24:00 as an end)")
    return 24 * 60 if text == "24:00" else int(m.group(1)) * 60 + int(m.group(2))


def _us(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


class ShiftCalendar:
    """A site's shifts and production days. Arguments are kept unchanged under their own names."""

    def __init__(self, tz: str = "UTC", shifts: list[tuple[str, str, str]] | tuple = (), *,
                 day_start: str = "00:00"):
        self.tz = tz
        self.shifts = [tuple(s) for s in shifts]
        self.day_start = day_start
        problems: list[ConfigProblem] = []
        try:
            self._zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            problems.append(ConfigProblem("timezone", f"unknown time zone {tz!r} (use an IANA name like 'Europe/Paris')"))
            self._zone = ZoneInfo("UTC")
        self._spans: list[tuple[str, int, int]] = []  # name, start minute, end minute (end > start, may exceed 1440)
        seen: set[str] = set()
        for i, s in enumerate(self.shifts):
            path = f"shifts[{i}]"
            if len(s) != 3:
                problems.append(ConfigProblem(path, "a shift is (name, start 'HH:MM', end 'HH:MM')"))
                continue
            name, a, b = s
            if not isinstance(name, str) or not name.strip():
                problems.append(ConfigProblem(f"{path}.name", "a shift needs a non-empty name"))
            elif name in seen:
                problems.append(ConfigProblem(f"{path}.name", f"duplicate shift name {name!r}"))
            seen.add(name)
            try:
                sa = _minutes(a)
                if sa == 24 * 60:
                    raise ValueError("a shift cannot start at 24:00; use 00:00")
                sb = _minutes(b) % (24 * 60)
            except (ValueError, TypeError) as e:
                problems.append(ConfigProblem(path, str(e)))
                continue
            if sb <= sa:
                sb += 24 * 60  # crosses midnight; start == end is a 24 h shift
            self._spans.append((name, sa, sb))
        # overlap check on the 24 h circle: unroll every span onto two days and compare pairwise
        for i in range(len(self._spans)):
            for j in range(i + 1, len(self._spans)):
                n1, a1, b1 = self._spans[i]
                n2, a2, b2 = self._spans[j]
                if any(a1 < b2 + k and a2 + k < b1 for k in (-1440, 0, 1440)):
                    problems.append(ConfigProblem("shifts", f"shifts {n1!r} and {n2!r} overlap"))
        if day_start == "first_shift":
            if not self._spans:
                problems.append(ConfigProblem("day_start", "'first_shift' needs at least one shift"))
                self._day_min = 0
            else:
                self._day_min = self._spans[0][1]
        else:
            try:
                self._day_min = _minutes(day_start) % 1440
            except (ValueError, TypeError) as e:
                problems.append(ConfigProblem("day_start", f"{e}; or 'first_shift'"))
                self._day_min = 0
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        return f"ShiftCalendar(tz={self.tz!r}, shifts={self.shifts!r}, day_start={self.day_start!r})"

    # -- wall clock -> instant -----------------------------------------------------------------------------
    def local_to_us(self, day: date, minute: int) -> int:
        """The instant of wall time `minute` minutes after local midnight of `day` (may exceed 1440)."""
        day = day + timedelta(days=minute // 1440)
        minute %= 1440
        naive = datetime.combine(day, time(minute // 60, minute % 60))
        first = naive.replace(tzinfo=self._zone, fold=0)
        u = _us(first.astimezone(timezone.utc))
        back = datetime.fromtimestamp(u / US, timezone.utc).astimezone(self._zone).replace(tzinfo=None)
        if back == naive:
            return u  # exists (fold=0 is the first occurrence when it exists twice)
        # skipped by a spring-forward change: use the instant the clock jumps. It lies between the readings with
        # the post-change offset (lo) and the pre-change offset (u); find it by bisection on whole seconds.
        lo = _us(naive.replace(tzinfo=self._zone, fold=1).astimezone(timezone.utc))
        lo, hi = min(lo, u) // US, max(lo, u) // US
        off_lo = self._offset(lo)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offset(mid) == off_lo:
                lo = mid
            else:
                hi = mid
        return hi * US

    def _offset(self, sec: int) -> timedelta:
        return datetime.fromtimestamp(sec, timezone.utc).astimezone(self._zone).utcoffset()

    def local_date(self, ts_us: int) -> date:
        return datetime.fromtimestamp(ts_us / US, timezone.utc).astimezone(self._zone).date()

    # -- periods ---------------------------------------------------------------------------------------------
    def periods(self, start_us: int, end_us: int, by: str = "shift", *, clip: bool = True) -> list[Period]:
        """Periods of kind `by` ("shift", "day" or "hour") overlapping [start_us, end_us), in time order."""
        start_us, end_us = int(start_us), int(end_us)
        if end_us <= start_us:
            raise InvalidInput("periods: end must be after start")
        if by not in BY:
            raise InvalidInput(f"periods: by must be one of {', '.join(BY)}, not {by!r}")
        if by == "shift" and not self._spans:
            raise InvalidInput("periods: this calendar has no shifts")
        if by == "hour":
            if (end_us - start_us) // (3600 * US) > MAX_PERIODS:
                raise InvalidInput(f"periods: more than {MAX_PERIODS} periods requested")
            raw = self._hours(start_us, end_us)
        else:
            if (end_us - start_us) // (86400 * US) * max(1, len(self._spans)) > MAX_PERIODS:
                raise InvalidInput(f"periods: more than {MAX_PERIODS} periods requested")
            raw = self._days_or_shifts(start_us, end_us, by)
        out = []
        for label, a, b in raw:
            if b <= start_us or a >= end_us or b <= a:
                continue  # outside the window, or a shift that a DST change reduced to nothing
            if clip and (a < start_us or b > end_us):
                out.append(Period(label, max(a, start_us), min(b, end_us), by, False))
            else:
                out.append(Period(label, a, b, by, True))
        return out

    def _days_or_shifts(self, start_us: int, end_us: int, by: str) -> list[tuple[str, int, int]]:
        # production day d starts at day_start on local date d; shifts belong to the production day they start in
        first = self.local_date(start_us) - timedelta(days=2)
        last = self.local_date(end_us) + timedelta(days=1)
        out = []
        d = first
        while d <= last:
            if by == "day":
                out.append((d.isoformat(), self.local_to_us(d, self._day_min),
                            self.local_to_us(d, self._day_min + 1440)))
            else:
                for name, a, b in self._spans:
                    day = d + timedelta(days=1) if a < self._day_min else d
                    out.append((f"{d.isoformat()} {name}", self.local_to_us(day, a), self.local_to_us(day, b)))
            d += timedelta(days=1)
        out.sort(key=lambda r: r[1])
        return out

    def _hours(self, start_us: int, end_us: int) -> list[tuple[str, int, int]]:
        # a local hour starts where the local clock reads HH:00; offsets are whole quarter hours in every
        # zone in use, so checking UTC quarter hours finds every such instant, both 02:00s in autumn included
        q = 900 * US
        t = (start_us // (3600 * US)) * 3600 * US - 3600 * US
        bounds = []
        while t <= end_us + 3600 * US:
            dt = datetime.fromtimestamp(t / US, timezone.utc).astimezone(self._zone)
            if dt.minute == 0 and dt.second == 0:
                bounds.append((t, dt))
            t += q
        out = []
        for (a, dt), (b, _) in zip(bounds, bounds[1:]):
            out.append((dt.isoformat(timespec="minutes"), a, b))
        return out
