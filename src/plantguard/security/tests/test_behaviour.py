"""Behavioural detection on a real platform: each rule fires on its fault with the readings as evidence, once per
window; nothing fires on normal traffic (noisy, quantised, flat, slow, bursty) or while a device learns."""

from __future__ import annotations

import numpy as np
import pytest

from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.runtime import Platform
from plantguard.security.events import list_events
from plantguard.testing.factories import plant_dict

S = 1_000_000
T0 = 1_800_000_000 * S
DEV = "s1/a1/l1/pump1/plc1"


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def plat(tmp_path):
    clock = Clock()
    d = plant_dict(4, data_dir=str(tmp_path), alarms=False)
    d["security"] = {"behaviour": {"learning_readings": 300, "learning_minutes": 10, "dedupe_s": 3600}}
    p = Platform(parse_config(d), clock=clock)
    p.clock_ = clock
    yield p
    p.stop()


def signals(n: int, seed: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return {0: 50 + rng.normal(0, 1, n),                        # noise
            1: np.round(20 + 5 * np.sin(t / 300) + rng.normal(0, 0.3, n)),  # quantised, slow
            2: np.where((t // 500) % 2 == 0, 0.0, 100.0),         # a valve: long flat stretches, big but legal steps
            3: np.full(n, 7.0)}                                   # a constant (never moved: never "frozen")


def feed(p, start_s: int, values: dict[int, np.ndarray], per_batch: int = 10) -> None:
    n = len(next(iter(values.values())))
    for lo in range(0, n, per_batch):
        hi = min(n, lo + per_batch)
        tags, ts, vs = [], [], []
        for i, arr in values.items():
            for k in range(lo, hi):
                tags.append(f"{DEV}/p{i}")
                ts.append(T0 + (start_s + k) * S)
                vs.append(float(arr[k]))
        p.clock_.t = T0 + (start_s + hi) * S
        p.pipeline.process_now(RawBatch.build(tags, ts, vs))


def rules(p) -> list[str]:
    return sorted(e.rule for e in list_events(p.store))


def test_normal_traffic_raises_nothing(plat):
    sig = signals(4 * 3600, 1)
    feed(plat, 0, sig, per_batch=60)
    assert rules(plat) == [], [e.message for e in list_events(plat.store)]
    assert plat.services.behaviour.errors == 0


def test_each_fault_fires_once_with_its_evidence(plat):
    feed(plat, 0, signals(1800, 2))
    assert rules(plat) == []
    base = 1800
    # a stuck sensor: p0 (always moving) holds one value
    stuck = signals(300, 3)
    stuck[0] = np.full(300, 50.25)
    feed(plat, base, stuck)
    # a forged value: p1 jumps by far more than half its range (-1000..1000) in one period
    jump = signals(10, 4)
    jump[1][5] = 1500.0 if jump[1][5] < 0 else -990.0
    feed(plat, base + 300, jump)
    # a flood: ten times the usual readings in one minute
    p = plat
    t = T0 + (base + 320) * S
    many = RawBatch.build([f"{DEV}/p0"] * 3000, [t + i * 1000 for i in range(3000)], list(np.random.default_rng(5).normal(50, 1, 3000)))
    p.clock_.t = t + 10 * S
    p.pipeline.process_now(many)
    p.clock_.t = t + 120 * S  # the minute closes
    p.pipeline.process_now(RawBatch.build([f"{DEV}/p3"], [t + 119 * S], [7.0]))
    # a replay: readings 30 days behind the points' own
    p.clock_.t = t + 130 * S
    p.pipeline.process_now(RawBatch.build([f"{DEV}/p1"], [t - 30 * 86400 * S], [20.0]))
    got = {e.rule: e for e in list_events(p.store)}
    assert set(got) == {"behaviour.frozen", "behaviour.implausible_jump", "behaviour.flood", "behaviour.far_timestamp"}, \
        [e.message for e in got.values()]
    assert got["behaviour.frozen"].evidence["point"] == f"{DEV}/p0" and got["behaviour.frozen"].evidence["value"] == 50.25
    assert got["behaviour.implausible_jump"].evidence["point"] == f"{DEV}/p1"
    assert got["behaviour.flood"].evidence["readings"] >= 3000
    # the same fault again within the window: no second event
    feed(plat, base + 500, stuck)
    assert len(list_events(p.store, rule="behaviour.frozen")) == 1


def test_nothing_fires_while_learning_and_muted_rules_stay_quiet(plat):
    sig = signals(100, 6)
    sig[1][50] = 999.0  # a jump during learning: not judged
    feed(plat, 0, sig)
    assert rules(plat) == []
    from plantguard.domain.actor import Actor

    plat.services.posture.decide("behaviour.frozen", DEV, "mute", "a test rig", Actor.system("tests"))
    feed(plat, 100, signals(1800, 7))
    stuck = signals(400, 8)
    stuck[0] = np.full(400, 1.5)
    feed(plat, 1900, stuck)
    assert "behaviour.frozen" not in rules(plat)


def test_a_bad_batch_never_stops_ingest(plat, monkeypatch):
    proc = plat.services.behaviour
    monkeypatch.setattr(proc, "_run_batch", lambda b, now: 1 / 0)
    feed(plat, 0, signals(20, 9))
    assert proc.errors >= 1 and plat.pipeline.stats.accepted == 80
