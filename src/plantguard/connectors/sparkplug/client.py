"""The only module of the Sparkplug connector that imports paho-mqtt (pinned in manifest.yaml).

Threading: paho runs its network loop in its own thread (loop_start) and calls back on it. publish(), ack() and
drop() may be called from any thread: paho queues the packet and wakes its loop through a socket pair.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable

import paho.mqtt.client as mqtt

MessageHandler = Callable[[str, bytes, int, int, bool], None]  # topic, payload, mid, qos, dup


class SparkplugClient:
    """MQTT 3.1.1 subscriber with a persistent session (clean_session False), manual acknowledgement and an
    optional last will (the primary host's STATE death). `next_delay(attempt)` gives the wait before each
    reconnect attempt: paho's own backoff has no jitter, so the delay is handed to paho as min == max."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        subscriptions: list[tuple[str, int]],
        on_message: MessageHandler,
        on_connected: Callable[[bool], None],
        on_disconnected: Callable[[str], None],
        next_delay: Callable[[int], float],
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.host, self.port, self.keepalive = host, port, keepalive
        self.subscriptions = subscriptions
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._next_delay = next_delay
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311,
                        reconnect_on_failure=True, manual_ack=True)
        if username is not None:
            c.username_pw_set(username, password)
        if will is not None:
            c.will_set(will[0], will[1], qos=1, retain=True)
        c.on_connect = self._cb_connect
        c.on_disconnect = self._cb_disconnect
        c.on_connect_fail = self._cb_connect_fail
        c.on_message = self._cb_message
        c.on_pre_connect = self._cb_pre_connect
        self._c = c
        self._tries = 0
        self._started = False

    # -- paho callbacks (network thread) ----------------------------------------------------------------------
    def _cb_message(self, client, userdata, msg) -> None:
        self._on_message(msg.topic, msg.payload, msg.mid, msg.qos, bool(msg.dup))

    def _cb_pre_connect(self, client, userdata) -> None:
        self._tries += 1

    def _cb_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self._on_disconnected(f"broker refused the connection: {reason}")
            self._set_delay()
            return
        self._tries = 0
        client.subscribe(self.subscriptions)  # harmless with a stored session, needed if the broker lost it
        self._on_connected(bool(flags.session_present))

    def _cb_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self._on_disconnected(f"connection lost: {reason}" if reason.is_failure else "disconnected")
        self._set_delay()

    def _cb_connect_fail(self, client, userdata) -> None:
        self._on_disconnected(f"cannot connect to {self.host}:{self.port}")
        self._set_delay()

    def _set_delay(self) -> None:
        d = self._next_delay(self._tries + 1)
        self._c.reconnect_delay_set(d, d)

    # -- control (any thread) -----------------------------------------------------------------------------
    def start(self) -> None:
        self._set_delay()
        self._c.connect_async(self.host, self.port, keepalive=self.keepalive)
        self._c.loop_start()
        self._started = True

    def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        self._c.publish(topic, payload, qos=qos, retain=retain)

    def ack(self, mid: int, qos: int) -> None:
        self._c.ack(mid, qos)

    def drop(self) -> None:
        """Breaks the connection without DISCONNECT: the broker keeps unacknowledged messages and redelivers
        them after the reconnect."""
        sock = self._c.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self, timeout: float = 5.0, last: tuple[str, bytes] | None = None) -> None:
        """Publishes `last` (the STATE death, since a clean DISCONNECT suppresses the will), disconnects and
        ends the network thread; never waits beyond `timeout`."""
        if not self._started:
            return
        self._started = False
        if last is not None and self._c.is_connected():
            info = self._c.publish(last[0], last[1], qos=1, retain=True)
            try:
                info.wait_for_publish(min(timeout, 2.0))
            except (RuntimeError, ValueError):
                pass
        self._c.disconnect()
        t = threading.Thread(target=self._c.loop_stop, name="sparkplug-loop-stop", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            self.drop()
            t.join(timeout)

    @property
    def connected(self) -> bool:
        return self._c.is_connected()
