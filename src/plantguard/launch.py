"""Running a platform from a program or a shell (the CLI): what it gets is the services and the lifecycle,
nothing else of the composed platform.

    with launch.running(cfg) as run:                  # started; stopped on leaving (sources, drain, store)
        run.services.telemetry.latest([...])

    run = launch.open_config(cfg, model_file=...)      # built, not started: run.start() ... run.stop()
    run = launch.open_data_dir(path)                   # a stopped plant's store and stored model, read as it is
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from plantguard.errors import NotFound
from plantguard.services import Services

EMBEDDED_FILE = "plantguard.duckdb"


class Running:
    """One platform seen from outside: its typed services, start and stop."""

    def __init__(self, platform) -> None:
        self._platform = platform

    @property
    def services(self) -> Services:
        return self._platform.services

    def start(self) -> "Running":
        self._platform.start()
        return self

    def stop(self) -> None:
        self._platform.stop()

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def open_config(cfg, *, model_file=None, alarms: bool = True, analytics: bool = True) -> Running:
    """The platform of a configuration (`model_file`: the stored model wins unless the file changed)."""
    from plantguard.runtime import Platform

    return Running(Platform(cfg, model_file=model_file, alarms=alarms, analytics=analytics))


def open_data_dir(data_dir: Path) -> Running:
    """A platform (no alarm engine, no analytics) over an embedded store directory, with its stored model: opening
    it changes nothing. NotFound when there is no store or it holds no model yet."""
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.store.embedded import EmbeddedStore

    if not (Path(data_dir) / EMBEDDED_FILE).is_file():
        raise NotFound(f"no plantguard store in {data_dir} (expected {Path(data_dir) / EMBEDDED_FILE})")
    store = EmbeddedStore(data_dir)
    doc = store.load_model()
    if doc is None:
        store.close()
        raise NotFound(f"the store in {data_dir} holds no plant model yet; use --config")
    return Running(Platform(parse_config(json.loads(doc[1])), store=store, alarms=False, analytics=False))


@contextmanager
def running(cfg, **kw) -> Iterator[Running]:
    run = open_config(cfg, **kw).start()
    try:
        yield run
    finally:
        run.stop()


def model_versions(*, storage=None, data_dir: Path | None = None, limit: int = 20) -> list[dict]:
    """Stored plant model versions, newest first, from the store a configuration names or an embedded directory."""
    from plantguard.store import open_store
    from plantguard.store.embedded import EmbeddedStore

    if data_dir is not None:
        if not (Path(data_dir) / EMBEDDED_FILE).is_file():
            raise NotFound(f"no plantguard store in {data_dir}")
        store = EmbeddedStore(data_dir)
        store.migrate()
    else:
        store = open_store(storage)
    try:
        return store.model_versions(limit=limit)
    finally:
        store.close()


def restore_backup(backup_dir, storage_cfg) -> dict:
    """A store backup (made online by the continuity service) back into an empty store: see plantguard.store."""
    from plantguard.store import restore_backup as restore

    return restore(backup_dir, storage_cfg)
