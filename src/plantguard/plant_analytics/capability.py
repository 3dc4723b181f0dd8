"""The analytics capability: SPC, anomaly detection and remaining useful life over every stored batch, with its
learned state checkpointed in the store."""

from __future__ import annotations

from plantguard.capabilities import Capability, Parts, register


def build(platform) -> Parts:
    from plantguard.plant_analytics.processor import AnalyticsProcessor

    from plantguard.keys import state_ring

    store, clock = platform.store, platform.clock
    # checkpoints are sealed with a key outside the store; the start that makes the key migrates older ones
    ring = state_ring(platform.cfg.storage.data_dir, platform.cfg.storage.key_dir)
    proc = AnalyticsProcessor(
        platform.cfg, platform.registry, alarms=platform.alarms, clock=clock,
        sink=lambda w: store.write_analytics(w, clock()),
        checkpoint=(lambda name, blob: store.save_checkpoint(name, blob, clock()), store.load_checkpoint),
        keys=ring, legacy_checkpoints=ring.created)
    platform.analytics = proc
    return Parts(processors=[proc])


def routers() -> list:
    from plantguard.api import analytics

    return [analytics.router]


register(Capability("analytics", build=build, routers=routers))
