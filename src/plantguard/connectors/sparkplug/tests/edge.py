"""A small Sparkplug B edge node for tests: paho + the connector's codec, with its own seq and bdSeq."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from plantguard.connectors.sparkplug import codec
from plantguard.connectors.sparkplug.connector import REBIRTH

NS = "spBv1.0"


class EdgeNode:
    def __init__(self, host: str, port: int, group: str, node: str) -> None:
        self.group, self.node = group, node
        self.seq = 0
        self.bd_seq = 0
        self.commands: list[codec.Payload] = []
        self._subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-{group}-{node}", protocol=mqtt.MQTTv311)
        c.on_message = lambda cl, ud, msg: self.commands.append(codec.decode_payload(msg.payload))
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_connect = lambda cl, *a: cl.subscribe(f"{NS}/{group}/NCMD/{node}", qos=0)
        self._c = c
        self.host, self.port = host, port

    def __enter__(self) -> "EdgeNode":
        self._c.connect(self.host, self.port, keepalive=60)
        self._c.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("edge node: no SUBACK")
        return self

    def __exit__(self, *exc) -> None:
        self._c.disconnect()
        self._c.loop_stop()

    def rebirth_requests(self) -> int:
        return sum(1 for p in list(self.commands) for m in p.metrics if m.name == REBIRTH and m.value is True)

    # -- publishing ----------------------------------------------------------------------------------------
    def topic(self, mtype: str, device: str | None = None) -> str:
        return f"{NS}/{self.group}/{mtype}/{self.node}" + (f"/{device}" if device else "")

    def raw(self, topic: str, data: bytes) -> None:
        self._c.publish(topic, data, qos=1).wait_for_publish(10)

    def send(self, mtype: str, metrics: list[codec.Metric], *, device: str | None = None, ts: int | None = None,
             seq: int | None = None) -> None:
        """Publishes with the next seq (or the one given); NBIRTH restarts it at 0, NDEATH carries none."""
        if mtype == "NBIRTH":
            self.seq = 0  # unless a seq is given: a node that does not start at 0 tests the wrap
            metrics = [codec.Metric(name="bdSeq", datatype=codec.DataType.Int64, value=self.bd_seq), *metrics]
        if mtype == "NDEATH":
            p = codec.Payload(timestamp=ts, metrics=[codec.Metric(name="bdSeq", datatype=codec.DataType.Int64, value=self.bd_seq), *metrics])
        else:
            s = self.seq if seq is None else seq
            self.seq = (s + 1) % 256
            p = codec.Payload(timestamp=ts if ts is not None else int(time.time() * 1000), seq=s, metrics=metrics)
        self.raw(self.topic(mtype, device), codec.encode_payload(p))
