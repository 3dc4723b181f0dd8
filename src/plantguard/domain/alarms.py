"""Alarm records and ISA-18.2 states."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum


class AlarmState(str, Enum):
    """ISA-18.2 alarm states (the subset plantguard tracks)."""

    normal = "normal"  # inactive and acknowledged: nothing to show
    unacknowledged = "unacknowledged"  # active, not yet acknowledged
    acknowledged = "acknowledged"  # active, acknowledged
    returned_to_normal = "returned_to_normal"  # inactive again, never acknowledged (RTN unack)
    shelved = "shelved"  # temporarily suppressed by an operator, until shelved_until


PRIORITY_RANK = {"low": 0, "medium": 1, "high": 2, "urgent": 3}


@dataclass
class AlarmRecord:
    id: str  # "<tag>:<condition>", one record per point and condition
    tag: str
    condition: str  # HIHI, HI, LO, LOLO, ROC, STALE, OFFLINE
    priority: str
    state: str = AlarmState.normal.value
    active: bool = False
    value: float | None = None
    limit: float | None = None
    message: str = ""
    raised_at: int | None = None  # epoch microseconds
    returned_at: int | None = None
    acked_by: str | None = None
    acked_at: int | None = None
    shelved_by: str | None = None
    shelved_at: int | None = None
    shelved_until: int | None = None
    shelve_reason: str | None = None
    updated_at: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


ALARM_COLUMNS = [f for f in AlarmRecord.__dataclass_fields__ if f != "extra"]


@dataclass
class AlarmEvent:
    alarm_id: str
    at: int
    event: str  # raised, acknowledged, returned, cleared, shelved, unshelved, escalated
    actor: str | None = None
    note: str | None = None
    value: float | None = None


# event codes of an AlarmHistory (what the alarm-system performance report needs from the event log)
HISTORY_EVENTS = ("raised", "returned", "acknowledged", "shelved", "unshelved", "cleared")


@dataclass
class AlarmHistory:
    """The alarm event log over [start, end) as columns, in time order, plus the condition each alarm was in
    at `start` (so an alarm raised before the window and still standing counts as standing)."""

    start: int
    end: int
    names: list[str]                 # alarm ids; `alarm` indexes this list
    alarm: "object"                  # np.ndarray int32
    at: "object"                     # np.ndarray int64, microseconds, ascending
    event: "object"                  # np.ndarray int8, index into HISTORY_EVENTS
    while_shelved: "object"          # np.ndarray bool: raised while shelved (recorded, not annunciated)
    active_at_start: dict[str, int] = field(default_factory=dict)   # alarm id -> when it was raised

    def __len__(self) -> int:
        return len(self.at)
