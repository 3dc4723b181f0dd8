"""The MQTT source as a capability: it owns the `mqtt:` section of the configuration file and, when it is
enabled, subscribes once the platform starts (supervised like every source)."""

from __future__ import annotations

from plantguard.capabilities import Capability, Parts, register
from plantguard.connectors.mqtt.config import MqttConfig


def build(platform) -> Parts:
    cfg: MqttConfig = platform.cfg.section("mqtt") or MqttConfig()

    def start() -> None:
        if cfg.enabled:
            from plantguard.connectors.mqtt.subscriber import MqttSource

            platform.add_source(MqttSource(cfg, platform.pipeline, max_payload_bytes=platform.cfg.ingest.max_payload_bytes))

    return Parts(on_start=[start])


register(Capability("mqtt", section=MqttConfig, build=build))
