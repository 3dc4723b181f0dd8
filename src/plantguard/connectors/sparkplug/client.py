"""The Sparkplug connector's MQTT adapter: the MQTT source's persistent-session subscriber (manual acks, jittered
reconnects, paho imported only in connectors/mqtt/client.py) plus what a Sparkplug host application needs: a last
will (its STATE death), the DUP flag on messages, publishing (STATE, rebirth NCMD) and a STATE death on stop.

Threading: paho runs its network loop in its own thread and calls back on it. publish(), ack() and drop() may be
called from any thread: paho queues the packet and wakes its loop through a socket pair.
"""

from __future__ import annotations

from typing import Callable

from plantguard.connectors.mqtt.client import SubscriberClient

MessageHandler = Callable[[str, bytes, int, int, bool], None]  # topic, payload, mid, qos, dup


class SparkplugClient(SubscriberClient):
    def __init__(self, *, on_message: MessageHandler, will: tuple[str, bytes] | None = None, **kw) -> None:
        super().__init__(on_message=on_message, **kw)  # type: ignore[arg-type]
        if will is not None:
            self._c.will_set(will[0], will[1], qos=1, retain=True)

    def _cb_message(self, client, userdata, msg) -> None:
        self._on_message(msg.topic, msg.payload, msg.mid, msg.qos, bool(msg.dup))

    def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        self._c.publish(topic, payload, qos=qos, retain=retain)

    def stop(self, timeout: float = 5.0, last: tuple[str, bytes] | None = None) -> None:
        """Publishes `last` first (the STATE death: a clean DISCONNECT suppresses the will), then stops."""
        if self._started and last is not None and self._c.is_connected():
            info = self._c.publish(last[0], last[1], qos=1, retain=True)
            try:
                info.wait_for_publish(min(timeout, 2.0))
            except (RuntimeError, ValueError):
                pass
        super().stop(timeout)
