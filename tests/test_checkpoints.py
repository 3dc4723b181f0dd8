"""Checkpoints carry a versioned header and survive code moves: learned state pickled when the analytics processor
lived in plantguard.ingest.analytics loads now that it is plantguard.plant_analytics.processor."""

import os
import pickle
import sys

import pytest

from plantguard import checkpoints
from plantguard.checkpoints import CheckpointError
from plantguard.keys import Keyring
from plantguard.plant_analytics import processor


def _pickled_under_old_name(obj) -> bytes:
    cls = type(obj)
    old = cls.__module__
    sys.modules["plantguard.ingest.analytics"] = processor
    cls.__module__ = "plantguard.ingest.analytics"
    try:
        return pickle.dumps(obj)  # a version-1 checkpoint, as the platform wrote before the move
    finally:
        cls.__module__ = old
        del sys.modules["plantguard.ingest.analytics"]


def test_state_of_a_moved_class_is_restored_not_discarded():
    st = processor._State()
    st.spc_keys["x"] = (3, "abc")
    blob = _pickled_under_old_name(st)
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(blob)  # what loading did before: the learned state was thrown away
    back = checkpoints.loads(blob, "analytics")
    assert isinstance(back, processor._State) and back.spc_keys == {"x": (3, "abc")}


def test_header_round_trip_and_refusals():
    ring = Keyring.generate()
    blob = checkpoints.dumps({"a": 1}, "analytics", ring)
    assert blob.startswith(f"PGCKPT 3 analytics {ring.primary[0]}\n".encode())
    assert checkpoints.loads(blob, "analytics", ring) == {"a": 1}
    with pytest.raises(CheckpointError, match="not 'detector'"):
        checkpoints.loads(blob, "detector", ring)
    with pytest.raises(CheckpointError, match="newer"):
        checkpoints.loads(b"PGCKPT 9 analytics\n" + blob.split(b"\n", 1)[1], "analytics")
    with pytest.raises(CheckpointError, match="seal does not match"):
        checkpoints.loads(blob[:-5] + b"xxxxx", "analytics", ring)
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoints.loads(blob[:-5], "analytics")  # no ring: the restricted loader alone


class _Boom:
    """What an attacker writes into a checkpoint row: unpickling calls os.system."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


@pytest.mark.parametrize("ring_kind", ["sealed by a key of ours", "no ring given"])
def test_a_crafted_pickle_runs_nothing(tmp_path, ring_kind):
    marker = tmp_path / "ran"
    body = pickle.dumps(_Boom(f"touch {marker}"))
    ring = Keyring.generate()
    # even sealed with our own key (a stolen key), the loader builds state classes only
    blob = checkpoints.dumps(None, "analytics", ring if ring_kind != "no ring given" else None).split(b"\n", 1)[0]
    head = blob
    tag = checkpoints._mac(ring.primary[1], head, body) if ring_kind != "no ring given" else bytes(32)
    crafted = head + b"\n" + tag + body
    with pytest.raises(CheckpointError, match="posix.system|os.system|not a state class"):
        checkpoints.loads(crafted, "analytics", ring if ring_kind != "no ring given" else None)
    for old in (body, b"PGCKPT 2 analytics\n" + body):  # the old formats, through the migration path
        with pytest.raises(CheckpointError, match="not a state class"):
            checkpoints.loads(old, "analytics", ring, legacy=True)
    assert not marker.exists()
    pickle.loads(body)  # the control: the same bytes through a plain unpickler do run the command
    assert marker.exists()


def test_a_row_written_by_someone_else_is_refused():
    ours, theirs = Keyring.generate(), Keyring.generate()
    st = processor._State()
    foreign = checkpoints.dumps(st, "analytics", theirs)
    with pytest.raises(CheckpointError, match="not in the state key ring"):
        checkpoints.loads(foreign, "analytics", ours)
    unsealed = checkpoints.dumps(st, "analytics")
    with pytest.raises(CheckpointError, match="seal does not match"):
        checkpoints.loads(unsealed.replace(b" -\n", f" {ours.primary[0]}\n".encode(), 1), "analytics", ours)
    for old in (pickle.dumps(st), b"PGCKPT 2 analytics\n" + pickle.dumps(st)):
        with pytest.raises(CheckpointError, match="unsealed"):
            checkpoints.loads(old, "analytics", ours)  # after the migration: refused
        assert isinstance(checkpoints.loads(old, "analytics", ours, legacy=True), processor._State)


def test_module_globals_of_state_modules_are_not_reachable():
    # a state module imports other things (numpy, math, typing...): only its own classes may be named
    for module, name in (("plantguard.plant_analytics.processor", "checkpoints"), ("plantguard.plant_analytics.processor", "log"),
                         ("plantguard.analytics.anomaly.base", "pickle"), ("builtins", "eval"), ("builtins", "getattr"),
                         ("subprocess", "Popen"), ("plantguard.analytics.anomaly.base", "is_missing")):
        body = b"c" + module.encode() + b"\n" + name.encode() + b"\n."  # protocol 0 GLOBAL
        with pytest.raises(CheckpointError, match="not a state class"):
            checkpoints.unpickle(body)


def test_the_platform_seals_and_migrates_once(tmp_path, caplog):
    """An existing store's unsealed checkpoint loads on the start that makes the state key, is saved sealed, and
    an unsealed row written after that is refused (that partition relearns; the platform starts)."""
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.testing.factories import plant_dict

    cfg = parse_config(plant_dict(2, data_dir=str(tmp_path)))
    p = Platform(cfg)
    names = [f"{processor.CHECKPOINT_NAME}@{k}" for k in p.services.analytics.processor._partition_keys(cfg)]
    p.stop()
    (tmp_path / "keys" / "state.key").unlink()  # as before this version: no state key yet
    from plantguard.store.embedded import EmbeddedStore

    s = EmbeddedStore(tmp_path)
    assert names
    st = processor._State()
    for n in names:
        s.save_checkpoint(n, b"PGCKPT 2 analytics\n" + pickle.dumps(st), 1)
    s.close()
    caplog.clear()
    p = Platform(cfg)
    try:
        assert p.services.analytics.processor._legacy  # the key was made by this start: the old checkpoints are read once
        assert not [r for r in caplog.records if "not usable" in r.getMessage()]
    finally:
        p.stop()
    s = EmbeddedStore(tmp_path)
    blobs = [b for (b,) in s.fetch("SELECT blob FROM analytics_checkpoints")]
    assert blobs and all(bytes(b).startswith(b"PGCKPT 3 analytics ") for b in blobs)
    for n in names:
        s.save_checkpoint(n, b"PGCKPT 2 analytics\n" + pickle.dumps(_Boom("true")), 2)
    s.close()
    caplog.clear()
    p = Platform(cfg)  # refused with a logged error, the platform runs
    try:
        assert not p.services.analytics.processor._legacy
        refused = [r.getMessage() for r in caplog.records if "not usable" in r.getMessage()]
        assert refused and all("unsealed" in m for m in refused)
    finally:
        p.stop()


def test_a_class_that_no_longer_exists_is_named():
    blob = pickle.dumps(processor._State()).replace(b"_State", b"_Gone_")
    with pytest.raises(CheckpointError, match="_Gone_"):
        checkpoints.loads(blob, "analytics")


def test_checkpoints_that_do_not_fit_together_do_not_stop_the_start(tmp_path, caplog):
    """Bug: a loadable checkpoint whose keys point past its banks made merge() raise IndexError in the
    constructor, so one bad row stopped the platform's start."""
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.testing.factories import plant_dict
    from plantguard.keys import state_ring

    cfg = parse_config(plant_dict(2, data_dir=str(tmp_path)))
    p = Platform(cfg)
    names = [f"{processor.CHECKPOINT_NAME}@{k}" for k in p.services.analytics.processor._partition_keys(cfg)]
    p.stop()
    st = processor._State()
    st.spc_keys["x"] = (3, "abc")  # slot 3 of a bank that has none
    from plantguard.store.embedded import EmbeddedStore

    s = EmbeddedStore(tmp_path)
    for n in names:
        s.save_checkpoint(n, checkpoints.dumps(st, "analytics", state_ring(tmp_path)), 1)
    s.close()
    p = Platform(cfg)
    try:
        assert "x" not in p.services.analytics.processor._st.spc_keys
        assert any("not usable together" in r.getMessage() for r in caplog.records)
    finally:
        p.stop()
