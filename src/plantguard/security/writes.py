"""Whether a write to a device may go out now: the gate every writing connector asks before it sends anything.

A write is refused while the device is quarantined, and outside the write windows that cover it:

    security:
      write_windows:
        - path: site1/packaging/line-1        # a device, or the asset, line, area or site above it
          days: [mon, tue, wed, thu, fri]
          start: "06:00"                       # in the site's time zone
          end: "14:00"                         # end before start: over midnight; end = start: 24 hours

A device covered by no window may be written at any time (windows are opt-in); a device covered by several may be
written inside any of them. A write refused by its window raises the security event
`access.write_outside_window` with who tried, the point and the windows; every attempt is in the audit log.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class WriteWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=512, description="a device path, or a site/area/line/asset above devices")
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1, description="days of the week the window opens")
    start: str = Field(description="HH:MM, local time of the site")
    end: str = Field(description="HH:MM; before start: the window runs over midnight; equal to start: 24 hours")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        try:
            h, m = v.split(":")
            if not (len(h) == 2 and len(m) == 2 and 0 <= int(h) <= 23 and 0 <= int(m) <= 59):
                raise ValueError
        except ValueError:
            raise ValueError(f"a time of day is HH:MM (00:00 to 23:59), not {v!r}") from None
        return v

    def minutes(self) -> tuple[int, int]:
        (h1, m1), (h2, m2) = (map(int, self.start.split(":")), map(int, self.end.split(":")))
        return h1 * 60 + m1, h2 * 60 + m2

    def covers(self, device: str) -> bool:
        p = self.path.rstrip("/")
        return device == p or device.startswith(p + "/")

    def open_at(self, local: dt.datetime) -> bool:
        lo, hi = self.minutes()
        t = local.hour * 60 + local.minute
        day = DAYS[local.weekday()]
        if lo < hi:
            return day in self.days and lo <= t < hi
        # over midnight (start = end: 24 hours from start): the part after midnight belongs to the day it opened
        before = DAYS[(local.weekday() - 1) % 7]
        return (day in self.days and t >= lo) or (before in self.days and t < hi)


class WriteGate:
    def __init__(self, *, quarantine, windows: list[WriteWindow], timezone_of: Callable[[str], str], clock,
                 raise_event: Callable[[str, str, str, dict], None]) -> None:
        self.quarantine = quarantine
        self.windows = windows
        self.timezone_of = timezone_of  # device path -> IANA zone of its site
        self.clock = clock
        self.raise_event = raise_event
        self.refused = 0

    def refusal(self, device: str, *, point: str | None = None, user: str | None = None) -> str | None:
        """Why a write to this device is refused now, or None."""
        why = self.quarantine.write_refusal(device) if self.quarantine is not None else None
        if why:
            self.refused += 1
            return why
        mine = [w for w in self.windows if w.covers(device)]
        if not mine:
            return None
        local = dt.datetime.fromtimestamp(self.clock() / 1e6, ZoneInfo(self.timezone_of(device)))
        if any(w.open_at(local) for w in mine):
            return None
        self.refused += 1
        spans = "; ".join(f"{','.join(w.days)} {w.start}-{w.end}" for w in mine)
        self.raise_event(device, "access.write_outside_window",
                         f"a write to {point or device} by {user or 'unknown'} at {local:%a %H:%M} {local.tzname()}, outside its write window ({spans})",
                         {"point": point, "user": user, "local_time": local.isoformat(), "windows": spans})
        return f"writes to {device} are allowed only in its write window ({spans}, {local.tzname()}); now is {local:%a %H:%M}"
