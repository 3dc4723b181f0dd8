"""The `mqtt:` section, kept as the shorthand of one `connectors:` entry of type mqtt named "mqtt": when it is
enabled the platform starts that connector with the other sources (supervised like every source)."""

from __future__ import annotations

from plantguard.capabilities import Capability, Context, Parts
from plantguard.connectors.mqtt.config import MqttConfig, MqttConnectorConfig


def as_connector(cfg: MqttConfig) -> MqttConnectorConfig:
    return MqttConnectorConfig(name="mqtt", **cfg.model_dump())


def build(ctx: Context) -> Parts:
    cfg: MqttConfig = ctx.config or MqttConfig()

    def start() -> None:
        if cfg.enabled:
            from plantguard.connectors.mqtt.connector import MqttConnector

            ctx.add_source(MqttConnector(as_connector(cfg), ctx.sink, clock=ctx.clock))

    return Parts(on_start=[start])


CAPABILITY = Capability("mqtt", section=MqttConfig, build=build)
