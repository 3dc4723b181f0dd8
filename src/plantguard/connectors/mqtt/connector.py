"""The MQTT source as a connector entry point (`connectors: [{type: mqtt, name: ...}]`), like Modbus and OPC UA:
several brokers or topic prefixes are several entries. The threading and acknowledgement model is MqttSource's."""

from __future__ import annotations

import asyncio
import random
import time

from plantguard.connectors.base import ProbeResult
from plantguard.connectors.mqtt.config import MqttConnectorConfig, MqttTuning
from plantguard.connectors.mqtt.subscriber import MqttSource
from plantguard.timeutil import Clock, now_us
from plantguard.errors import ConfigProblem


class MqttConnector(MqttSource):
    type = "mqtt"
    config_model = MqttConnectorConfig

    def __init__(self, cfg: MqttConnectorConfig, sink, *, clock: Clock = now_us, tuning: MqttTuning | None = None,
                 rand: random.Random | None = None) -> None:
        limit = cfg.max_payload_bytes or getattr(sink, "max_payload_bytes", None)
        super().__init__(cfg.broker(), sink, max_payload_bytes=limit, tuning=tuning, rand=rand)
        self.connector_cfg = cfg
        self.name = cfg.name
        self.clock = clock

    @classmethod
    def check(cls, cfg: MqttConnectorConfig) -> list[ConfigProblem]:
        return []  # every rule is in the schema

    @classmethod
    async def probe(cls, cfg: MqttConnectorConfig, *, max_rps: float = 50.0, duration_s: float = 5.0) -> list[ProbeResult]:
        """Connects once with a clean session and a throw-away client id (the ingest session is not touched),
        reports the CONNACK time, and names the risks of the settings. Nothing is subscribed or published."""
        from plantguard.connectors.mqtt.client import Publisher

        endpoint = f"{cfg.host}:{cfg.port}"
        r = ProbeResult(connector=cfg.name, link=cfg.topic_prefix, endpoint=endpoint, reachable=False)
        t0 = time.perf_counter()

        def connect() -> None:
            p = Publisher(cfg.host, cfg.port, client_id=f"plantguard-probe-{random.getrandbits(32):08x}",
                          username=cfg.username, password=cfg.password, tls=cfg.tls.kwargs() if cfg.tls else None)
            try:
                p.connect(timeout=max(1.0, duration_s))
            finally:
                try:
                    p.close()
                except Exception:  # noqa: BLE001 - a failed connect leaves nothing to close
                    pass

        try:
            await asyncio.to_thread(connect)
            r.reachable = True
            r.connect_ms = round((time.perf_counter() - t0) * 1000, 2)
        except Exception as e:  # noqa: BLE001 - unreachable is the answer, not an error
            r.notes.append(f"no MQTT connection: {e}")
        if cfg.username is None:
            r.risks.append("no username: the broker accepts anonymous clients, so any device on the network can publish readings")
        if cfg.tls is None:
            r.risks.append("no TLS: readings and credentials cross the network in clear")
        if cfg.qos == 0:
            r.risks.append("QoS 0: readings published while plantguard is disconnected are lost")
        return [r]

    def stop(self, timeout: float | None = None) -> None:
        super().stop()

    def health(self) -> dict:
        h = super().health()
        state = "online" if h["connected"] else "backoff" if self._started else "stopped"
        h.update(type=self.type, links={h["broker"]: {"name": h["broker"], "state": state, "last_error": h["last_error"],
                                                      "reconnects": h["reconnects"]}})
        return h
