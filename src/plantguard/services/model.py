"""The plant model: the current one, its stored versions, and edits (all through the platform's one model lock)."""

from __future__ import annotations

from typing import Callable

from plantguard.domain.actor import Actor
from plantguard.domain.model import PlantConfig
from plantguard.store.protocols import ModelStore


class ModelService:
    STORES = (ModelStore,)

    def __init__(self, store, *, current: Callable[[], PlantConfig], replace: Callable[..., PlantConfig],
                 index: Callable | None = None, messages: list[str] | None = None) -> None:
        from plantguard.capabilities import store_view

        self._store = store_view(store, self.STORES)
        self._current, self._replace, self._index = current, replace, index
        self.messages = list(messages or [])  # what resolving the model file at start reported

    def current(self) -> PlantConfig:
        return self._current()

    def index(self):
        """O(1) lookups by path in the current model (plantguard.domain.index.PlantIndex)."""
        if self._index is not None:
            return self._index()
        from plantguard.domain.index import PlantIndex

        return PlantIndex(self._current())

    def version(self) -> int:
        cur = self._store.load_model()
        return cur[0] if cur else 0

    def versions(self, limit: int = 100) -> list[dict]:
        return self._store.model_versions(limit=limit)

    def replace(self, data, actor: Actor) -> PlantConfig:
        """Validates and applies a whole new model, all or nothing (ConfigError by field path otherwise); the
        stored version records `actor`."""
        return self._replace(data, actor=str(actor))
