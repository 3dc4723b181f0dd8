"""The store's schema as one registry of named migrations, each with its SQL for both backends, applied in order
and recorded in `schema_migrations` (each in its own transaction; PostgreSQL under an advisory lock).

    from plantguard.store import migrations
    migrations.register(Migration("0100_security_users", embedded=[...], postgres=[...], owner="security"))
    migrations.plan("embedded")        # [(name, statements), ...] in order: the store's own, then registered ones

A capability declares its tables here instead of editing the backends: `register` at import of the capability,
before a store migrates. Names are unique across owners and never change once released (a store records the names
it applied); new names sort after the store's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from plantguard.store.analytics import migration as analytics_migration

_F8 = "DOUBLE PRECISION"
_ROLLUP_DDL_EMBEDDED = "(pid INTEGER NOT NULL, bucket BIGINT NOT NULL, vmin DOUBLE, vmax DOUBLE, vsum DOUBLE, n BIGINT, last_ts BIGINT, vlast DOUBLE)"
_ROLLUP_DDL_POSTGRES = f"(pid INTEGER NOT NULL, bucket BIGINT NOT NULL, vmin {_F8}, vmax {_F8}, vsum {_F8}, n BIGINT, last_ts BIGINT, vlast {_F8})"
DIALECTS = ("embedded", "postgres")


@dataclass(frozen=True)
class Migration:
    name: str
    embedded: tuple[str, ...]
    postgres: tuple[str, ...]
    owner: str = "store"

    def statements(self, dialect: str) -> tuple[str, ...]:
        return self.embedded if dialect == "embedded" else self.postgres


_EMBEDDED: list[tuple[str, list[str]]] = [
    (
        "0001_initial",
        [
            "CREATE TABLE points (pid INTEGER PRIMARY KEY, tag VARCHAR NOT NULL UNIQUE, meta VARCHAR NOT NULL)",
            "CREATE TABLE raw (pid INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE NOT NULL, quality UTINYINT NOT NULL, src_ts BIGINT)",
            f"CREATE TABLE rollup_1m {_ROLLUP_DDL_EMBEDDED}",
            f"CREATE TABLE rollup_1h {_ROLLUP_DDL_EMBEDDED}",
            "CREATE TABLE latest (pid INTEGER PRIMARY KEY, ts BIGINT NOT NULL, value DOUBLE NOT NULL, quality UTINYINT NOT NULL, src_ts BIGINT)",
            "CREATE SEQUENCE dead_letter_seq",
            "CREATE TABLE dead_letters (id BIGINT PRIMARY KEY DEFAULT nextval('dead_letter_seq'), received_at BIGINT NOT NULL, source VARCHAR, point VARCHAR, ts BIGINT, value VARCHAR, reason VARCHAR NOT NULL, payload VARCHAR)",
            "CREATE TABLE plant_model (version INTEGER PRIMARY KEY, saved_at BIGINT NOT NULL, doc VARCHAR NOT NULL)",
            "CREATE TABLE alarms (id VARCHAR PRIMARY KEY, tag VARCHAR NOT NULL, condition VARCHAR NOT NULL, priority VARCHAR NOT NULL, state VARCHAR NOT NULL, active BOOLEAN NOT NULL, value DOUBLE, \"limit\" DOUBLE, message VARCHAR, raised_at BIGINT, returned_at BIGINT, acked_by VARCHAR, acked_at BIGINT, shelved_by VARCHAR, shelved_at BIGINT, shelved_until BIGINT, shelve_reason VARCHAR, updated_at BIGINT NOT NULL, extra VARCHAR)",
            "CREATE SEQUENCE alarm_event_seq",
            "CREATE TABLE alarm_events (id BIGINT PRIMARY KEY DEFAULT nextval('alarm_event_seq'), alarm_id VARCHAR NOT NULL, \"at\" BIGINT NOT NULL, event VARCHAR NOT NULL, actor VARCHAR, note VARCHAR, value DOUBLE)",
        ],
    ),
    ("0002_analytics", analytics_migration("BLOB", indexes=False)),
    ("0003_model_origin_and_reject_codes", [
        # who stored each model version and from where (a file with its hash, the API, a rollback)
        "ALTER TABLE plant_model ADD COLUMN origin VARCHAR",
        "ALTER TABLE plant_model ADD COLUMN file_sha VARCHAR",
        "ALTER TABLE plant_model ADD COLUMN actor VARCHAR",
        "ALTER TABLE dead_letters ADD COLUMN code VARCHAR",
    ]),
]

_POSTGRES: list[tuple[str, list[str]]] = [
    (
        "0001_initial",
        [
            "CREATE TABLE points (pid INTEGER PRIMARY KEY, tag TEXT NOT NULL UNIQUE, meta TEXT NOT NULL)",
            f"CREATE TABLE raw (pid INTEGER NOT NULL, ts BIGINT NOT NULL, value {_F8} NOT NULL, quality SMALLINT NOT NULL, src_ts BIGINT)",
            # One btree on (pid, ts) serves raw(), downsample, existing() probes and retention (see apply_retention).
            # Measured with 2M rows: a BRIN on ts alone ingests ~2x faster but turns a one-point query into a scan
            # of every point's rows in the range (~120 ms vs ~2.5 ms for 2000 rows); adding a BRIN on ts next to
            # the btree costs ~15% of write throughput, so there is none.
            "CREATE INDEX raw_pid_ts ON raw (pid, ts)",
            f"CREATE TABLE rollup_1m {_ROLLUP_DDL_POSTGRES}",
            "CREATE INDEX rollup_1m_pid_bucket ON rollup_1m (pid, bucket)",
            f"CREATE TABLE rollup_1h {_ROLLUP_DDL_POSTGRES}",
            "CREATE INDEX rollup_1h_pid_bucket ON rollup_1h (pid, bucket)",
            f"CREATE TABLE latest (pid INTEGER PRIMARY KEY, ts BIGINT NOT NULL, value {_F8} NOT NULL, quality SMALLINT NOT NULL, src_ts BIGINT)",
            "CREATE SEQUENCE dead_letter_seq",
            "CREATE TABLE dead_letters (id BIGINT PRIMARY KEY DEFAULT nextval('dead_letter_seq'), received_at BIGINT NOT NULL, source TEXT, "
            "point TEXT, ts BIGINT, value TEXT, reason TEXT NOT NULL, payload TEXT)",
            "CREATE INDEX dead_letters_received_at ON dead_letters (received_at)",
            "CREATE TABLE plant_model (version INTEGER PRIMARY KEY, saved_at BIGINT NOT NULL, doc TEXT NOT NULL)",
            f"CREATE TABLE alarms (id TEXT PRIMARY KEY, tag TEXT NOT NULL, condition TEXT NOT NULL, priority TEXT NOT NULL, state TEXT NOT NULL, "
            f"active BOOLEAN NOT NULL, value {_F8}, \"limit\" {_F8}, message TEXT, raised_at BIGINT, returned_at BIGINT, acked_by TEXT, "
            "acked_at BIGINT, shelved_by TEXT, shelved_at BIGINT, shelved_until BIGINT, shelve_reason TEXT, updated_at BIGINT NOT NULL, extra TEXT)",
            "CREATE SEQUENCE alarm_event_seq",
            f"CREATE TABLE alarm_events (id BIGINT PRIMARY KEY DEFAULT nextval('alarm_event_seq'), alarm_id TEXT NOT NULL, \"at\" BIGINT NOT NULL, "
            f"event TEXT NOT NULL, actor TEXT, note TEXT, value {_F8})",
            "CREATE INDEX alarm_events_alarm_id ON alarm_events (alarm_id, id)",
        ],
    ),
    ("0002_analytics", analytics_migration("BYTEA", _F8)),
    ("0003_model_origin_and_reject_codes", [
        "ALTER TABLE plant_model ADD COLUMN origin TEXT",
        "ALTER TABLE plant_model ADD COLUMN file_sha TEXT",
        "ALTER TABLE plant_model ADD COLUMN actor TEXT",
        "ALTER TABLE dead_letters ADD COLUMN code TEXT",
        "CREATE INDEX dead_letters_code ON dead_letters (code, received_at)",
    ]),
]

assert [n for n, _ in _EMBEDDED] == [n for n, _ in _POSTGRES], "both backends have the same migrations"
BUILTIN: tuple[Migration, ...] = tuple(Migration(n, tuple(e), tuple(p)) for (n, e), (_, p) in zip(_EMBEDDED, _POSTGRES))
_registered: list[Migration] = []


def register(m: Migration) -> None:
    """Adds a capability's migration (idempotent for the same migration; a different one under a taken name is
    an error)."""
    if not m.name or not m.embedded or not m.postgres:
        raise ValueError("a migration needs a name and statements for both backends")
    for other in (*BUILTIN, *_registered):
        if other.name == m.name:
            if other == m:
                return
            raise ValueError(f"migration {m.name!r} is already registered by {other.owner}")
    _registered.append(m)


def all_migrations() -> list[Migration]:
    """The built-ins, then the capabilities' by name (their numbers order them, whatever order the capabilities
    were found in: the stores record them by name)."""
    return [*BUILTIN, *sorted(_registered, key=lambda m: m.name)]


def plan(dialect: str) -> list[tuple[str, tuple[str, ...]]]:
    """(name, statements) of every migration for `dialect`, in the order they are applied."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    return [(m.name, m.statements(dialect)) for m in all_migrations()]


def unregister(name: str) -> None:
    """Forgets a registered migration (tests); applied ones stay recorded in the stores that ran them."""
    _registered[:] = [m for m in _registered if m.name != name]
