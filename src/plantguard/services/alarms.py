"""Alarms: the list operators work from, one alarm and its history, and the operator commands."""

from __future__ import annotations

from plantguard.domain.actor import Actor
from plantguard.domain.alarms import AlarmEvent, AlarmRecord
from plantguard.errors import Unavailable


class AlarmService:
    def __init__(self, platform) -> None:
        self._p = platform

    @property
    def enabled(self) -> bool:
        return self._p.alarms is not None

    def _engine(self):
        if self._p.alarms is None:
            raise Unavailable("the alarm engine is disabled on this platform")
        return self._p.alarms

    # -- queries ----------------------------------------------------------------------------------------
    def list(self, *, state: str | None = None, priority: str | None = None, active: bool | None = None,
             tag_prefix: str | None = None) -> list[AlarmRecord]:
        """Most urgent first, then newest first; an empty list when the alarm engine is disabled."""
        if self._p.alarms is None:
            return []
        return self._p.alarms.list(state=state, priority=priority, active=active, tag_prefix=tag_prefix)

    def get(self, alarm_id: str) -> AlarmRecord:
        return self._engine().get(alarm_id)

    def history(self, alarm_id: str, limit: int = 1000) -> list[AlarmEvent]:
        """The alarm's events, newest first (NotFound for an unknown alarm rather than an empty history)."""
        self._engine().get(alarm_id)
        return self._p.store.alarm_events(alarm_id, limit)

    # -- commands -----------------------------------------------------------------------------------------
    def acknowledge(self, alarm_id: str, actor: Actor, note: str | None = None) -> AlarmRecord:
        return self._engine().acknowledge(alarm_id, actor, note)

    def shelve(self, alarm_id: str, actor: Actor, duration_us: int, reason: str) -> AlarmRecord:
        return self._engine().shelve(alarm_id, actor, duration_us, reason)

    def unshelve(self, alarm_id: str, actor: Actor) -> AlarmRecord:
        return self._engine().unshelve(alarm_id, actor)
