"""The `mqtt:` section, kept as the shorthand of one `connectors:` entry of type mqtt named "mqtt": when it is
enabled the platform starts that connector with the other sources (supervised like every source)."""

from __future__ import annotations

from plantguard.capabilities import Capability, Parts, register
from plantguard.connectors.mqtt.config import MqttConfig, MqttConnectorConfig


def as_connector(cfg: MqttConfig) -> MqttConnectorConfig:
    return MqttConnectorConfig(name="mqtt", **cfg.model_dump())


def build(platform) -> Parts:
    cfg: MqttConfig = platform.cfg.section("mqtt") or MqttConfig()

    def start() -> None:
        if cfg.enabled:
            from plantguard.connectors.mqtt.connector import MqttConnector

            platform.add_source(MqttConnector(as_connector(cfg), platform.pipeline, clock=platform.clock))

    return Parts(on_start=[start])


register(Capability("mqtt", section=MqttConfig, build=build))
