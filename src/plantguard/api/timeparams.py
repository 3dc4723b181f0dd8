"""Time in query parameters and responses.

Accepted forms: ISO 8601 with an offset (``2024-05-01T08:00:00Z``, ``2024-05-01T10:00:00+02:00``), epoch
milliseconds (``1714550400000``), or relative to the platform clock: ``now``, ``now-1h``, ``now-30d``,
``now+5m``. Responses carry every timestamp both as ISO 8601 (UTC) and as epoch milliseconds.
"""

from __future__ import annotations

import numpy as np

from plantguard.errors import InvalidInput
from plantguard.timeutil import parse_time

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
