"""Time handling. Internally every timestamp is an int64 count of microseconds since the Unix epoch, UTC."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timezone
from typing import Callable

from plantguard.errors import InvalidInput

US = 1_000_000
Clock = Callable[[], int]  # returns "now" in epoch microseconds


def now_us() -> int:
    return time.time_ns() // 1000


_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|min|h|d|w)?\s*$")
_UNIT = {"us": 1, "ms": 1_000, "s": US, None: US, "m": 60 * US, "min": 60 * US, "h": 3600 * US, "d": 86400 * US, "w": 7 * 86400 * US}


# No duration the platform handles is longer than a century; beyond it int64 microsecond arithmetic (a period
# times a count, now minus a retention) would overflow.
MAX_DURATION_US = 36_500 * 86400 * US


def describe_duration(us: int) -> str:
    """A short human form of a duration bound, for error messages ('30d', '1h', '10ms')."""
    for unit, size in (("d", 86400 * US), ("h", 3600 * US), ("min", 60 * US), ("s", US), ("ms", 1000)):
        if us >= size and us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


def parse_duration_us(value: str | int | float, *, max_us: int = MAX_DURATION_US, min_us: int = 0) -> int:
    """'500ms', '2s', '5m', '1h', '30d' or a plain number of seconds -> microseconds, within [min_us, max_us]
    (ValueError otherwise, naming the bound)."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '5s', '10m', '2h'")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("a duration must be a finite number of seconds")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        seconds = float(value)
    else:
        m = _DUR.match(str(value))
        if not m:
            raise ValueError(f"invalid duration {value!r}: use a number of seconds or e.g. '500ms', '5s', '10m', '2h', '30d'")
        seconds = float(m.group(1)) * _UNIT[m.group(2)] / US
    if not math.isfinite(seconds) or seconds * US > max_us:
        raise ValueError(f"a duration of at most {describe_duration(max_us)} is allowed here")
    us = int(round(seconds * US))
    if us < min_us:
        raise ValueError(f"a duration of at least {describe_duration(min_us)} is needed here")
    return us


def to_us(value: str | int | float | datetime) -> int:
    """Epoch milliseconds (number), ISO 8601 with an offset, or an aware datetime -> epoch microseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp has no time zone")
        return _dt_us(value)
    if isinstance(value, bool):
        raise ValueError("timestamp must be epoch milliseconds or ISO 8601 text")
    if isinstance(value, (int, float)):
        return int(round(value * 1000))
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone offset (add 'Z' or '+01:00')")
    return _dt_us(dt)


def _dt_us(dt: datetime) -> int:
    delta = dt.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def iso(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / US, tz=timezone.utc).isoformat().replace("+00:00", "Z")


# -- time arguments (API query parameters, CLI options) ----------------------------------------------------
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


