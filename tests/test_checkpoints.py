"""Checkpoints carry a versioned header and survive code moves: learned state pickled when the analytics processor
lived in plantguard.ingest.analytics loads now that it is plantguard.plant_analytics.processor."""

import pickle
import sys

import pytest

from plantguard import checkpoints
from plantguard.checkpoints import CheckpointError
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
    blob = checkpoints.dumps({"a": 1}, "analytics")
    assert blob.startswith(b"PGCKPT 2 analytics\n") and checkpoints.loads(blob, "analytics") == {"a": 1}
    with pytest.raises(CheckpointError, match="not 'detector'"):
        checkpoints.loads(blob, "detector")
    with pytest.raises(CheckpointError, match="newer"):
        checkpoints.loads(b"PGCKPT 9 analytics\n" + blob.split(b"\n", 1)[1], "analytics")
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoints.loads(blob[:-5], "analytics")


def test_a_class_that_no_longer_exists_is_named():
    blob = pickle.dumps(processor._State()).replace(b"_State", b"_Gone_")
    with pytest.raises(CheckpointError, match="_Gone_"):
        checkpoints.loads(blob, "analytics")
