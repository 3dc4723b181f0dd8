"""Online backup of both stores while readings arrive, restore into an empty store, the achieved RPO measured."""

import numpy as np
import pytest

from plantguard.config import parse_config
from plantguard.domain.actor import Actor
from plantguard.domain.readings import RawBatch
from plantguard.domain.settings import StorageConfig
from plantguard.launch import restore_backup
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict, tag
from plantguard.timeutil import now_us


def _fill(p, n=5000):
    t0 = now_us() - n * 1_000_000
    p.pipeline.submit(RawBatch.build([tag(i % 3) for i in range(n)], t0 + np.arange(n, dtype=np.int64) * 1_000_000,
                                     np.arange(n, dtype=float) % 50)).result(60)
    return n


def _roundtrip(p, restore_cfg):
    n = _fill(p)
    info = p.services.continuity.backup(Actor.user("admin"))
    assert info["raw_rows"] == n and info["achieved_rpo_s"] is not None and 0 <= info["achieved_rpo_s"] < 600
    _fill(p, 100)                                   # written after the backup: not in it
    assert [b["name"] for b in p.services.continuity.backups()] == [info["name"]]
    p.stop()
    out = restore_backup(p.services.continuity.backups_dir / info["name"], restore_cfg)
    assert out["raw_rows"] == n
    with pytest.raises(Exception, match="exists|empty|already"):
        restore_backup(p.services.continuity.backups_dir / info["name"], restore_cfg)   # nothing is overwritten


def test_embedded_backup_and_restore(tmp_path):
    p = Platform(parse_config(plant_dict(3, data_dir=str(tmp_path / "d")))).start()
    _roundtrip(p, StorageConfig(backend="embedded", data_dir=str(tmp_path / "restored")))


def test_postgres_backup_and_restore(tmp_path, pg_server):
    src, dst = pg_server.create_database(), pg_server.create_database()
    d = plant_dict(3, data_dir=str(tmp_path / "d"))
    d["storage"] = {"backend": "postgres", "postgres_dsn": pg_server.dsn_for(src), "data_dir": str(tmp_path / "d")}
    p = Platform(parse_config(d)).start()
    _roundtrip(p, StorageConfig(backend="postgres", postgres_dsn=pg_server.dsn_for(dst), data_dir=str(tmp_path / "x")))
