"""The alarm capability: the engine (the first processor on the pipeline), the webhook notifier, and the alarm
service the API, the dashboard and the live stream use."""

from __future__ import annotations

from plantguard.capabilities import Capability, Context, Parts
from plantguard.store.protocols import AlarmStore, ReadingsStore


def build(ctx: Context) -> Parts:
    from plantguard.alarms.engine import AlarmEngine
    from plantguard.alarms.notify import WebhookNotifier
    from plantguard.services.alarms import AlarmService

    cfg = ctx.model
    notifier = WebhookNotifier(cfg.alarms.webhooks, allowed_networks=cfg.alarms.webhook_allowed_networks) if cfg.alarms.webhooks else None
    engine = AlarmEngine(cfg, ctx.points, ctx.store, clock=ctx.clock, notifier=notifier, bus=ctx.bus,
                         lag_us=ctx.ingest_lag_us)  # silence is judged against what was caught up
    parts = Parts(processors=[engine], services={"alarms": AlarmService(engine, ctx.store)}, on_model=[lambda cfg: engine.reload(cfg)])
    if notifier is not None:
        parts.on_start.append(notifier.start)
        parts.on_stop.append(notifier.stop)  # after the pipeline drained: the last transitions are delivered
    return parts


def routers() -> list:
    from plantguard.alarms import api

    return [api.router]


CAPABILITY = Capability("alarms", build=build, stores=(AlarmStore, ReadingsStore), routers=routers)
