"""The field types the plant model and the platform settings share: strict models, identifiers, and durations
with the bounds every one is checked against when a model is loaded."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from plantguard.timeutil import US, parse_duration_us

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$", description="letters, digits, '_' or '-'; at most 64")]
TAG_SEP = "/"


class _Strict(BaseModel):
    # No NaN or infinity anywhere in the model: a limit, gain or bound must be a real number. Defaults are
    # validated too, so a default duration is parsed like a given one.
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True, allow_inf_nan=False,
                              validate_default=True)


DAY_US = 86400 * US
# Bounds of the durations in the model. Every duration is checked against its bound when the model is loaded
# (file, API, stored version), so that no arithmetic of the runtime can overflow on a value that passed.
PERIOD_MAX_US = 30 * DAY_US  # an expected sampling period (a monthly lab sample is the slowest we know)
DELAY_MAX_US = 7 * DAY_US  # alarm on/off delays
LEAD_MAX_US = 365 * DAY_US  # predictive lead time
MAX_COUNT = 10_000  # multiples of a period (stale after N periods, offline after N periods)
MAX_SECONDS = 30 * 86400.0  # OEE windows and gaps given as seconds


class DurationText(str):
    """A duration as written ('5s', '2h'), parsed once at load: `.us` is its length in microseconds."""
    us: int


class DurationSeconds(float):
    """A duration given as a number of seconds, parsed once at load: `.us` is its length in microseconds."""
    us: int


def typed_duration(v: Any, us: int):
    """`v` as given (text or seconds, so documents round-trip unchanged) carrying its parsed length `.us`."""
    out = DurationText(v) if isinstance(v, str) else DurationSeconds(v)
    out.us = us
    return out


def _plain_duration(v: Any) -> str | float:
    return str(v) if isinstance(v, str) else float(v)


#: a duration field: text or seconds, serialised as plain text or number (the parsed .us stays in memory)
DurationValue = Annotated[str | float, PlainSerializer(_plain_duration, return_type=str | float)]


def us_of(d: Any) -> int:
    """Microseconds of a model duration (parsed at load; a value set in code is parsed here)."""
    us = getattr(d, "us", None)
    return us if isinstance(us, int) else parse_duration_us(d)


def _duration(max_us: int, min_us: int = 0):
    """A field validator: the value parses as a duration within [min_us, max_us]; the text is kept as given and
    its length in microseconds rides along as `.us`, so the runtime never parses it again."""

    def check(v):
        return typed_duration(v, parse_duration_us(v, max_us=max_us, min_us=min_us))

    return check




class DataType(str, Enum):
    float = "float"
    int = "int"
    bool = "bool"
    state = "state"  # enumerated machine state, stored as its integer code


class Criticality(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class Duration(str):
    """A duration given as seconds or text ('500ms', '5s', '10m', '2h', '30d')."""


def _dur(v: Any) -> int:
    return parse_duration_us(v)
