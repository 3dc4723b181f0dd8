"""JSON forms of domain records shared by several shells (the alarm routes and the live stream)."""

from __future__ import annotations

from plantguard.api.timeparams import iso
from plantguard.domain.alarms import AlarmRecord

ALARM_TIMES = ("raised_at", "returned_at", "acked_at", "shelved_at", "shelved_until", "updated_at")


def alarm_public(rec: AlarmRecord) -> dict:
    """An alarm record with ISO 8601 times and without its internal extras."""
    d = rec.as_dict()
    d.pop("extra", None)
    for k in ALARM_TIMES:
        d[k] = iso(d[k]) if d[k] else None
    return d
