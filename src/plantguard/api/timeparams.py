"""Time in query parameters and responses.

Accepted forms: ISO 8601 with an offset (``2024-05-01T08:00:00Z``, ``2024-05-01T10:00:00+02:00``), epoch
milliseconds (``1714550400000``), or relative to the platform clock: ``now``, ``now-1h``, ``now-30d``,
``now+5m``. Responses carry every timestamp both as ISO 8601 (UTC) and as epoch milliseconds.
"""

from __future__ import annotations

import re

import numpy as np

from plantguard.errors import InvalidInput
from plantguard.timeutil import parse_duration_us, to_us

_RELATIVE = re.compile(r"^now\s*(?:([+\- ])\s*(\S.*))?$", re.IGNORECASE)
_EPOCH_MS = re.compile(r"^-?\d+(?:\.\d+)?$")
# In a query string an unescaped '+' arrives as a space: '...T10:00:00 02:00' meant '+02:00'.
_SPACE_OFFSET = re.compile(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")
_LIMIT_US = 253_402_300_800_000_000  # 10000-01-01: beyond it datetimes cannot be shown

HINT = "use ISO 8601 with an offset (2024-05-01T08:00:00Z), epoch milliseconds, or now / now-1h / now-30d"


def parse_time(text: str, now: int, name: str = "time") -> int:
    """Epoch microseconds of one time parameter; InvalidInput naming the parameter otherwise."""
    s = text.strip()
    m = _RELATIVE.match(s)
    try:
        if m:
            sign, dur = m.groups()
            if dur is None:
                return now
            delta = parse_duration_us(dur)
            us = now - delta if sign == "-" else now + delta  # a space is a '+' the query string decoded
        elif _EPOCH_MS.match(s):
            us = int(round(float(s) * 1000))
        else:
            us = to_us(_SPACE_OFFSET.sub(r"\1+\2", s))
    except (ValueError, OverflowError) as e:
        raise InvalidInput(f"{name}: invalid time {text!r} ({e}); {HINT}") from None
    if not -_LIMIT_US < us < _LIMIT_US:
        raise InvalidInput(f"{name}: time {text!r} is out of range; {HINT}")
    return us


def time_range(start: str | None, end: str | None, now: int, default_start: str = "now-1h") -> tuple[int, int]:
    s = parse_time(start or default_start, now, "start")
    e = parse_time(end or "now", now, "end")
    if e <= s:
        raise InvalidInput("end must be after start")
    return s, e


def iso_array(ts_us: np.ndarray) -> list[str]:
    """ISO 8601 UTC strings; fractional digits only as far as the values need them (one width per array)."""
    ts = np.asarray(ts_us, np.int64)
    unit = "s" if (ts % 1_000_000 == 0).all() else "ms" if (ts % 1000 == 0).all() else "us"
    return np.datetime_as_string(ts.astype("datetime64[us]"), unit=unit, timezone="UTC").tolist()


def iso(ts_us: int | None) -> str | None:
    return None if ts_us is None else iso_array(np.array([ts_us], np.int64))[0]


def ms_array(ts_us: np.ndarray) -> list[int | float]:
    """Epoch milliseconds: integers unless a reading carries sub-millisecond precision."""
    ts = np.asarray(ts_us, np.int64)
    if (ts % 1000 == 0).all():
        return (ts // 1000).tolist()
    return [t // 1000 if t % 1000 == 0 else t / 1000 for t in ts.tolist()]


def ms(ts_us: int | None) -> int | float | None:
    return None if ts_us is None else ms_array(np.array([ts_us], np.int64))[0]
