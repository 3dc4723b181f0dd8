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


def restore_backup(backup_dir, storage_cfg) -> dict:
    """Restores a backup made by `Store.backup` into the store `storage_cfg` names, which must be empty (a new
    data directory; a new, empty PostgreSQL database): nothing is overwritten. Offline: no platform runs on it."""
    import shutil
    import subprocess
    from pathlib import Path

    from plantguard.errors import StoreError

    src = Path(backup_dir)
    if (src / "plantguard.duckdb").is_file():
        if storage_cfg.backend != "embedded":
            raise StoreError("an embedded backup restores into an embedded store")
        dest = Path(storage_cfg.data_dir) / "plantguard.duckdb"
        if dest.exists():
            raise StoreError(f"{dest} exists: restore into a new data directory")
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(src / "plantguard.duckdb", dest)
        dest.chmod(0o600)
    elif (src / "plantguard.pgdump").is_file():
        if storage_cfg.backend != "postgres":
            raise StoreError("a PostgreSQL backup restores into a PostgreSQL store")
        from plantguard.store.postgres import _pg_tool

        r = subprocess.run([_pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction",
                            f"--dbname={storage_cfg.postgres_dsn}", str(src / "plantguard.pgdump")],
                           capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise StoreError(f"pg_restore failed: {r.stderr.strip()[-500:]}")
    else:
        raise StoreError(f"{src} holds no plantguard backup (plantguard.duckdb or plantguard.pgdump)")
    store = open_store(storage_cfg)
    try:
        c = store.counts()
    finally:
        store.close()
    return {"restored": str(src), "raw_rows": c["raw"], "points": c["points"]}
