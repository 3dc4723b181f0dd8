"""The analytics capability: SPC, anomaly detection and remaining useful life over every stored batch, with its
learned state checkpointed in the store."""

from __future__ import annotations

from plantguard.capabilities import Capability, Parts, register


def build(platform) -> Parts:
    from plantguard.plant_analytics.processor import AnalyticsProcessor

    store, clock = platform.store, platform.clock
    proc = AnalyticsProcessor(
        platform.cfg, platform.registry, alarms=platform.alarms, clock=clock,
        sink=lambda w: store.write_analytics(w, clock()),
        checkpoint=(lambda name, blob: store.save_checkpoint(name, blob, clock()), store.load_checkpoint))
    platform.analytics = proc
    return Parts(processors=[proc])


def routers() -> list:
    from plantguard.api import analytics

    return [analytics.router]


register(Capability("analytics", build=build, routers=routers))
