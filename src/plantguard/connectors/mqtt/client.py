"""The only module that imports paho-mqtt (pinned in manifest.yaml): a thin adapter, so paho's API and its
threading rules stay in one place.

Threading: paho runs its network loop in its own thread (loop_start). Callbacks run on that thread. ack() and
drop() may be called from any thread: paho queues the PUBACK and wakes its loop through a socket pair.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Callable

import paho.mqtt.client as mqtt

MessageHandler = Callable[[str, bytes, int, int], None]  # topic, payload, mid, qos


def use_tls(c: "mqtt.Client", tls: dict | None) -> None:
    """TLS 1.2+ with the broker's certificate checked against `ca_file` (and its host name), and the client's own
    certificate when given (mutual TLS)."""
    if not tls:
        return
    c.tls_set(ca_certs=tls["ca_file"], certfile=tls.get("cert_file"), keyfile=tls.get("key_file"),
              cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)


class SubscriberClient:
    """A persistent-session (MQTT 3.1.1, clean_session False) subscriber with manual acknowledgement.

    `next_delay(attempt)` is asked for the wait before every reconnect attempt (1 = the first one after a loss or
    a failure): paho's own backoff has no jitter, so the delay is handed to paho as min == max right before it
    waits.
    """

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
        tls: dict | None = None,
    ) -> None:
        self.host, self.port, self.keepalive = host, port, keepalive
        self.subscriptions = subscriptions
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._next_delay = next_delay
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=True,
            manual_ack=True,
        )
        if username is not None:
            c.username_pw_set(username, password)
        use_tls(c, tls)
        c.on_connect = self._cb_connect
        c.on_disconnect = self._cb_disconnect
        c.on_connect_fail = self._cb_connect_fail
        c.on_message = self._cb_message
        c.on_pre_connect = self._cb_pre_connect
        self._c = c
        self._tries = 0  # connection attempts since the last accepted CONNACK
        self._started = False

    # -- paho callbacks (network thread) ----------------------------------------------------------------------
    def _cb_message(self, client, userdata, msg) -> None:
        self._on_message(msg.topic, msg.payload, msg.mid, msg.qos)

    def _cb_pre_connect(self, client, userdata) -> None:
        self._tries += 1

    def _cb_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self._on_disconnected(f"broker refused the connection: {reason}")
            self._set_delay()
            return
        # Subscribing again is harmless with a stored session and needed if the broker lost it.
        self._tries = 0
        client.subscribe(self.subscriptions)
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

    def ack(self, mid: int, qos: int) -> None:
        self._c.ack(mid, qos)

    def drop(self) -> None:
        """Breaks the connection without DISCONNECT, so the broker keeps the unacknowledged messages and
        redelivers them after paho reconnects."""
        sock = self._c.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the network thread

    def stop(self, timeout: float = 5.0) -> None:
        """DISCONNECT (the broker keeps the session), then the network thread ends; never waits beyond `timeout`."""
        if not self._started:
            return
        self._started = False
        self._c.disconnect()
        t = threading.Thread(target=self._c.loop_stop, name="mqtt-loop-stop", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():  # the network thread is stuck (e.g. in a callback): drop the socket so it returns
            self.drop()
            t.join(timeout)

    @property
    def connected(self) -> bool:
        return self._c.is_connected()

    @property
    def thread_alive(self) -> bool:
        """Whether paho's network thread still runs (it ends if a callback raises)."""
        t = getattr(self._c, "_thread", None)  # paho keeps no public handle on the thread it started
        return t is not None and t.is_alive()


class Publisher:
    """A small QoS 0/1 publisher for tests, benchmarks and the simulator.

    publish() returns the message's index; acked() lists the indices the broker has acknowledged (PUBACK).
    """

    def __init__(self, host: str, port: int, client_id: str = "", *, max_inflight: int = 1000, clean_session: bool = True,
                 username: str | None = None, password: str | None = None, tls: dict | None = None) -> None:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session if client_id else True,
                        protocol=mqtt.MQTTv311)
        if username is not None:
            c.username_pw_set(username, password)
        use_tls(c, tls)
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)
        self._c = c
        self.host, self.port = host, port
        self._infos: list = []

    def connect(self, timeout: float = 10.0) -> "Publisher":
        self._c.connect(self.host, self.port, keepalive=60)
        self._c.loop_start()
        deadline = time.monotonic() + timeout
        while not self._c.is_connected():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no CONNACK from {self.host}:{self.port} within {timeout:g} s")
            time.sleep(0.005)
        return self

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> int:
        info = self._c.publish(topic, payload, qos=qos)
        self._infos.append(info)
        return len(self._infos) - 1

    def backlog(self) -> int:
        """Messages handed to paho whose PUBACK has not arrived yet."""
        return len(self._c._out_messages)  # noqa: SLF001 - paho has no public counter for this

    def acked(self) -> list[int]:
        return [i for i, info in enumerate(self._infos) if info.is_published()]

    def wait_all(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        for info in self._infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                info.wait_for_publish(remaining)
            except (RuntimeError, ValueError):
                return False
            if not info.is_published():
                return False
        return True

    def close(self) -> None:
        self._c.disconnect()
        self._c.loop_stop()

    def __enter__(self) -> "Publisher":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()
