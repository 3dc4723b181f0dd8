"""The only module importing pymodbus: a thin async adapter. Callers get a Reply (registers or bits, or the
exception code the device answered with) or one of two plantguard exceptions; never a pymodbus type.

pymodbus' own reconnect and retry logic is switched off (reconnect_delay=0, retries=0): the connector decides
when to retry, with backoff, per device, so one silent slave cannot make the library close a shared socket.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from plantguard.errors import PlantguardError

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every timeout as ERROR; the connector reports them

READ_FC = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}
EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "device failure",
                   5: "acknowledge", 6: "device busy", 8: "memory parity error", 10: "gateway path unavailable",
                   11: "gateway target failed to respond"}


class ModbusLinkError(PlantguardError):
    """Transport failure: cannot connect, connection lost, garbled or mismatched answer."""


class ModbusTimeout(ModbusLinkError):
    """The device did not answer within the timeout."""


@dataclass
class Reply:
    """A device's answer: `values` (uint16 registers, or uint8 0/1 bits) or the Modbus exception code."""

    values: np.ndarray | None = None
    exception_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.exception_code is None


class ModbusClient:
    def __init__(self, *, kind: str, timeout_s: float, host: str = "", port: int = 502, serial_port: str = "",
                 baudrate: int = 19200, parity: str = "N", stopbits: int = 1, bytesize: int = 8) -> None:
        self.timeout_s = timeout_s
        common = dict(timeout=timeout_s, retries=0, reconnect_delay=0, reconnect_delay_max=0)
        if kind == "rtu":
            self._c = AsyncModbusSerialClient(serial_port, framer=FramerType.RTU, baudrate=baudrate, parity=parity,
                                              stopbits=stopbits, bytesize=bytesize, **common)
        else:
            framer = FramerType.RTU if kind == "rtu_tcp" else FramerType.SOCKET
            self._c = AsyncModbusTcpClient(host, port=port, framer=framer, **common)
        # pymodbus closes a TCP socket after a few unanswered requests; silence is handled per device instead.
        self._c.set_max_no_responses(1 << 30)

    @property
    def connected(self) -> bool:
        return self._c.connected

    async def connect(self) -> None:
        try:
            ok = await asyncio.wait_for(self._c.connect(), self.timeout_s + 1.0)
        except (asyncio.TimeoutError, OSError, ModbusException) as e:
            raise ModbusLinkError(f"cannot connect: {e or type(e).__name__}") from None
        if not ok:
            raise ModbusLinkError("cannot connect")

    def close(self) -> None:
        try:
            self._c.close()
        except Exception:  # noqa: BLE001 - closing a broken transport must not raise
            pass

    async def _call(self, coro) -> object:
        try:
            rr = await coro  # pymodbus enforces the timeout (an extra wait_for would cost a task per request)
        except asyncio.TimeoutError:
            raise ModbusTimeout(f"no answer within {self.timeout_s * 1000:.0f} ms") from None
        except ModbusException as e:
            text = str(e)
            if "No response" in text:
                raise ModbusTimeout(f"no answer within {self.timeout_s * 1000:.0f} ms") from None
            raise ModbusLinkError(text) from None
        except OSError as e:
            raise ModbusLinkError(f"{type(e).__name__}: {e}") from None
        return rr

    async def read(self, table: str, unit: int, address: int, count: int) -> Reply:
        c = self._c
        fn = {"holding": c.read_holding_registers, "input": c.read_input_registers,
              "coil": c.read_coils, "discrete": c.read_discrete_inputs}[table]
        rr = await self._call(fn(address, count=count, device_id=unit))
        if rr.isError():
            return Reply(exception_code=int(getattr(rr, "exception_code", 0) or 0))
        if table in ("coil", "discrete"):
            bits = np.asarray(rr.bits[:count], np.uint8)
            if len(bits) != count:
                raise ModbusLinkError(f"asked for {count} bits, got {len(bits)}")
            return Reply(values=bits)
        regs = np.asarray(rr.registers, np.uint16)
        if len(regs) != count:
            raise ModbusLinkError(f"asked for {count} registers, got {len(regs)}")
        return Reply(values=regs)

    async def write(self, table: str, unit: int, address: int, values: list[int]) -> Reply:
        """Writes registers (function 6 for one, 16 for several) or one coil (function 5)."""
        c = self._c
        if table == "coil":
            rr = await self._call(c.write_coil(address, bool(values[0]), device_id=unit))
        elif len(values) == 1:
            rr = await self._call(c.write_register(address, int(values[0]), device_id=unit))
        else:
            rr = await self._call(c.write_registers(address, [int(v) for v in values], device_id=unit))
        if rr.isError():
            return Reply(exception_code=int(getattr(rr, "exception_code", 0) or 0))
        return Reply()
