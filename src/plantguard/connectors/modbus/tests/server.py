"""Test helper: start/stop the real pymodbus server subprocess on a free loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ModbusServer:
    def __init__(self, layout: dict, workdir: Path, *, port: int | None = None, framer: str = "socket",
                 serial: str = "", silent_missing: bool = False) -> None:
        self.layout_file = Path(workdir) / f"layout-{time.time_ns()}.json"
        self.layout_file.write_text(json.dumps(layout))
        self.port = port or (0 if serial else free_port())
        self.framer, self.serial, self.silent_missing = framer, serial, silent_missing
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ModbusServer":
        cmd = [sys.executable, "-m", "plantguard.connectors.modbus.tests.modbus_server", "--layout", str(self.layout_file),
               "--port", str(self.port), "--framer", self.framer]
        if self.serial:
            cmd += ["--serial", self.serial]
        if self.silent_missing:
            cmd.append("--silent-missing")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            self.stop()
            raise RuntimeError(f"modbus server did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> "ModbusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(cond, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
