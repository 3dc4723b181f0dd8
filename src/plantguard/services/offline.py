"""Opening a data directory or a configured store without running the platform, for the CLI's offline commands
(query, export, model-history on a stopped plant)."""

from __future__ import annotations

import json
from pathlib import Path

from plantguard.errors import NotFound
from plantguard.store.rollup import AGGREGATES  # noqa: F401 - the aggregates queries offer, for the shells

EMBEDDED_FILE = "plantguard.duckdb"


def platform_for_data_dir(data_dir: Path):
    """A Platform (no alarm engine, no analytics) over an embedded store directory, with its stored model: opening
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
    return Platform(parse_config(json.loads(doc[1])), store=store, alarms=False, analytics=False)


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


def import_csv(platform, file: Path, options, *, max_problems: int, progress=None):
    """Imports a historian CSV export through the platform's pipeline, then merges the rollup partials the import
    wrote (so months of charts stay fast). Returns the import report."""
    from plantguard.connectors.csv import import_csv as _import

    rep = _import(platform.pipeline, file, options, max_problems=max_problems, progress=progress)
    platform.pipeline.compact()
    return rep
