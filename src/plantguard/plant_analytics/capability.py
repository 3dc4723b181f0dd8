"""The analytics capability: SPC, anomaly detection and remaining useful life over every stored batch, with its
learned state checkpointed in the store (sealed with the state key), and the analytics service."""

from __future__ import annotations

from plantguard.capabilities import Capability, Context, Parts
from plantguard.store.protocols import AnalyticsStore, CheckpointStore, ReadingsStore


def build(ctx: Context) -> Parts:
    from plantguard.keys import state_ring
    from plantguard.plant_analytics.processor import AnalyticsProcessor
    from plantguard.services.analytics import AnalyticsService

    store, clock = ctx.store, ctx.clock
    # checkpoints are sealed with a key outside the store; the start that makes the key migrates older ones
    ring = state_ring(ctx.data_dir, ctx.key_dir)
    alarms = ctx.uses("alarms")
    proc = AnalyticsProcessor(
        ctx.model, ctx.points, alarms=alarms if alarms is not None and alarms.enabled else None, publish=ctx.bus.publish,
        clock=clock, sink=lambda w: store.write_analytics(w, clock()),
        checkpoint=(lambda name, blob: store.save_checkpoint(name, blob, clock()), store.load_checkpoint),
        keys=ring, legacy_checkpoints=ring.created)
    core = ctx.uses("telemetry").core  # the same core parts the platform's services read
    return Parts(processors=[proc], services={"analytics": AnalyticsService(core, ctx.store, proc)}, on_model=[lambda cfg: proc.reload(cfg)])  # late-bound: the processor's reload as it is then


def routers() -> list:
    from plantguard.plant_analytics import api

    return [api.router]


CAPABILITY = Capability("analytics", build=build, stores=(AnalyticsStore, CheckpointStore, ReadingsStore), routers=routers)
