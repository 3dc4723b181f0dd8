"""Storage: one interface (store.base.Store), two backends (embedded DuckDB, PostgreSQL)."""

from __future__ import annotations

from plantguard.store.base import Store


def open_store(storage_cfg) -> Store:
    """Opens the backend named in a StorageConfig and applies pending migrations."""
    if storage_cfg.backend == "postgres":
        from plantguard.store.postgres import PostgresStore

        store: Store = PostgresStore(storage_cfg.postgres_dsn)
    else:
        from plantguard.store.embedded import EmbeddedStore

        store = EmbeddedStore(storage_cfg.data_dir, memory_limit=storage_cfg.memory_limit)
    store.migrate()
    return store
