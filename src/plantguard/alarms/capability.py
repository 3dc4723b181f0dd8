"""The alarm capability: the engine (the first processor on the pipeline) and the webhook notifier."""

from __future__ import annotations

from plantguard.capabilities import Capability, Parts, register


def build(platform) -> Parts:
    from plantguard.alarms.engine import AlarmEngine
    from plantguard.alarms.notify import WebhookNotifier

    cfg = platform.cfg
    notifier = WebhookNotifier(cfg.alarms.webhooks, allowed_networks=cfg.alarms.webhook_allowed_networks) if cfg.alarms.webhooks else None
    engine = AlarmEngine(cfg, platform.registry, platform.store, clock=platform.clock, notifier=notifier,
                         bus=platform.bus)
    engine.lag_us = platform.pipeline.current_lag_us  # silence is judged against what was caught up
    platform.alarms, platform.notifier = engine, notifier
    parts = Parts(processors=[engine])
    if notifier is not None:
        parts.on_start.append(notifier.start)
        parts.on_stop.append(notifier.stop)  # after the pipeline drained: the last transitions are delivered
    return parts


def routers() -> list:
    from plantguard.api import alarms

    return [alarms.router]


register(Capability("alarms", build=build, routers=routers))
