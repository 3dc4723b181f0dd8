"""The plant model: the current one, its stored versions, and edits (all through the platform's one model lock)."""

from __future__ import annotations

from plantguard.domain.actor import Actor
from plantguard.domain.model import PlantConfig


class ModelService:
    def __init__(self, platform) -> None:
        self._p = platform

    def current(self) -> PlantConfig:
        return self._p.cfg

    def version(self) -> int:
        return self._p.model_version()

    def versions(self, limit: int = 100) -> list[dict]:
        return self._p.store.model_versions(limit=limit)

    def replace(self, data, actor: Actor) -> PlantConfig:
        """Validates and applies a whole new model, all or nothing (ConfigError by field path otherwise); the
        stored version records `actor`."""
        return self._p.replace_model(data, actor=str(actor))
