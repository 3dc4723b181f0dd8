"""A real pymodbus server for the connector's tests and benchmark, run as a subprocess so a test can kill and
restart it. The layout (JSON file) gives each unit id its four tables as lists of values starting at protocol
address 0; reads beyond a table answer exception 2 (illegal data address).

    python -m plantguard.connectors.modbus.tests.modbus_server --layout L.json (--port P [--framer rtu] | --serial /dev/pts/N)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from pymodbus import FramerType
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusSerialServer, ModbusTcpServer


def context(layout: dict) -> ModbusServerContext:
    devs = {}
    for unit, tables in layout.items():
        blocks = {}
        for t in ("hr", "ir", "co", "di"):
            values = tables.get(t) or [0]
            blocks[t] = ModbusSequentialDataBlock(1, list(values))  # block address 1 == protocol address 0
        devs[int(unit)] = ModbusDeviceContext(**blocks)
    return ModbusServerContext(devices=devs, single=False)


async def main(a) -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    with open(a.layout) as f:
        layout = json.load(f)
    ctx = context(layout)
    units = {int(u) for u in layout}

    def drop_missing(sending: bool, packet: bytes) -> bytes:
        # fault injection: answers for unknown unit ids are not sent, as from an offline slave behind a gateway
        if sending and a.silent_missing and packet:
            unit = packet[0] if (a.serial or a.framer == "rtu") else packet[6] if len(packet) > 6 else None
            if unit is not None and unit not in units:
                return b""
        return packet

    if a.serial:
        server = ModbusSerialServer(ctx, framer=FramerType.RTU, port=a.serial, baudrate=115200, trace_packet=drop_missing)
    else:
        server = ModbusTcpServer(ctx, address=("127.0.0.1", a.port), framer=FramerType.RTU if a.framer == "rtu" else FramerType.SOCKET,
                                 trace_packet=drop_missing)
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.2)
    print("READY", flush=True)
    await task


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--layout", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--framer", choices=["socket", "rtu"], default="socket")
    p.add_argument("--serial", default="")
    p.add_argument("--silent-missing", action="store_true", help="unknown unit ids get no answer (not exception 11)")
    asyncio.run(main(p.parse_args()))
