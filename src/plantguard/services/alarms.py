"""Alarms: the list operators work from, one alarm and its history, and the operator commands."""

from __future__ import annotations

from plantguard.domain.actor import Actor
from plantguard.domain.alarms import AlarmEvent, AlarmRecord
from plantguard.errors import Unavailable
from plantguard.store.protocols import AlarmStore


class AlarmService:
    """Over the alarm engine (None: the alarm capability is off on this platform)."""

    STORES = (AlarmStore,)

    def __init__(self, engine, store) -> None:
        from plantguard.capabilities import store_view

        self.engine = engine
        self._store = store_view(store, self.STORES)

    @property
    def enabled(self) -> bool:
        return self.engine is not None

    def _engine(self):
        if self.engine is None:
            raise Unavailable("the alarm engine is disabled on this platform")
        return self.engine

    # -- queries ----------------------------------------------------------------------------------------
    def list(self, *, state: str | None = None, priority: str | None = None, active: bool | None = None,
             tag_prefix: str | None = None) -> list[AlarmRecord]:
        """Most urgent first, then newest first; an empty list when the alarm engine is disabled."""
        if self.engine is None:
            return []
        return self.engine.list(state=state, priority=priority, active=active, tag_prefix=tag_prefix)

    def get(self, alarm_id: str) -> AlarmRecord:
        return self._engine().get(alarm_id)

    def history(self, alarm_id: str, limit: int = 1000) -> list[AlarmEvent]:
        """The alarm's events, newest first (NotFound for an unknown alarm rather than an empty history)."""
        self._engine().get(alarm_id)
        return self._store.alarm_events(alarm_id, limit)

    def is_active(self, alarm_id: str) -> bool:
        return self.engine is not None and self.engine.is_active(alarm_id)

    def active_count(self) -> int:
        return self.engine.active_count() if self.engine is not None else 0

    def subscribe_changes(self, name: str, handler) -> None:
        """Calls handler(AlarmChanged) on every transition (the live stream); no-op when alarms are off."""
        if self.engine is not None and self.engine.bus is not None:
            from plantguard.events import AlarmChanged

            self.engine.bus.subscribe(name, handler, AlarmChanged)

    def unsubscribe_changes(self, name: str) -> None:
        if self.engine is not None and self.engine.bus is not None:
            self.engine.bus.unsubscribe(name)

    # -- commands -----------------------------------------------------------------------------------------
    def acknowledge(self, alarm_id: str, actor: Actor, note: str | None = None) -> AlarmRecord:
        return self._engine().acknowledge(alarm_id, actor, note)

    def shelve(self, alarm_id: str, actor: Actor, duration_us: int, reason: str) -> AlarmRecord:
        return self._engine().shelve(alarm_id, actor, duration_us, reason)

    def unshelve(self, alarm_id: str, actor: Actor) -> AlarmRecord:
        return self._engine().unshelve(alarm_id, actor)
