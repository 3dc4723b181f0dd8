"""End to end against a real pymodbus server (a subprocess on a free loopback port): every data type and order
through a real Platform into the embedded store, exception responses as bad quality, report by exception,
a silent unit id on the shared socket, shadow mode, audited writes, reconnection after a server restart, RTU
over a pseudo-terminal pair, and the probe. No timing assertions: tests wait for counters, with generous caps."""

from __future__ import annotations

import asyncio
import os
import pty
import struct
import threading
import time
import tty

import pytest

from plantguard.connectors.modbus.config import ModbusConfig
from plantguard.connectors.modbus.connector import ModbusConnector, WriteRefused
from plantguard.connectors.modbus.tests.server import ModbusServer, wait_for
from plantguard.domain.model import PlantConfig
from plantguard.config import parse_config
from plantguard.runtime import Platform

DEV = "s1/a1/l1/pump1"


def regs(fmt: str, value, bo="big", wo="big") -> list[int]:
    data = struct.pack(">" + fmt, value)
    chunks = [data[i:i + 2] for i in range(0, len(data), 2)]
    if bo == "little":
        chunks = [c[::-1] for c in chunks]
    out = [int.from_bytes(c, "big") for c in chunks]
    return out[::-1] if wo == "little" else out


HR1 = (regs("f", 21.5) + regs("f", -7.25, wo="little") + regs("f", 3.5, bo="little") + regs("f", 1000.0, "little", "little")
       + regs("h", -123) + regs("H", 60000) + regs("i", -100000) + regs("I", 4_000_000_000, wo="little") + regs("d", 123.456)
       + [0xBEEF, 0x0008] + [int.from_bytes(b, "big") for b in (b"AB", b"C1", b"\0\0")])
HR1 = HR1 + [0] * (40 - len(HR1)) + [500] + [0] * 20
LAYOUT = {"1": {"hr": HR1, "ir": regs("h", -5) + [7], "co": [1, 0, 1], "di": [0, 0, 0, 1]},
          "2": {"hr": [222, 0, 0]}}
# point id, table, address, data type, extra, expected value
POINTS1 = [
    ("f_bb", "holding", 0, "float32", {}, 21.5),
    ("f_wl", "holding", 2, "float32", {"word_order": "little"}, -7.25),
    ("f_bl", "holding", 4, "float32", {"byte_order": "little"}, 3.5),
    ("f_ll", "holding", 6, "float32", {"byte_order": "little", "word_order": "little"}, 1000.0),
    ("i16", "holding", 8, "int16", {}, -123),
    ("u16", "holding", 9, "uint16", {"scale": 0.1, "offset": -1}, 5999.0),
    ("i32", "holding", 10, "int32", {}, -100000),
    ("u32", "holding", 12, "uint32", {"word_order": "little"}, 4_000_000_000),
    ("f64", "holding", 14, "float64", {}, 123.456),
    ("raw", "holding", 18, "bits", {}, 0xBEEF),
    ("flag", "holding", 19, "bool", {"bit": 3}, 1),
    ("sp", "holding", 40, "uint16", {"writable": True}, 500),
    ("ir", "input", 0, "int16", {}, -5),
    ("coil", "coil", 2, "bool", {"writable": True}, 1),
    ("di", "discrete", 3, "bool", {}, 1),
    ("gone", "holding", 500, "uint16", {}, None),  # beyond the server's table: exception 2
]


def plant_doc(data_dir) -> dict:
    def dev(id_, ids, mode="live", alarm_on=None):
        pts = [{"id": i, "data_type": "float"} for i in ids]
        for p in pts:
            if p["id"] == alarm_on:
                p["alarms"] = {"limits": {"hi": 100}}
        return {"id": id_, "protocol": "modbus", "mode": mode, "points": pts}

    return {"sites": [{"id": "s1", "areas": [{"id": "a1", "lines": [{"id": "l1", "assets": [{"id": "pump1", "devices": [
        dev("plc1", [p[0] for p in POINTS1]), dev("plc2", ["v"], alarm_on="v"), dev("plc7", ["v"]),
        dev("pilot", ["v"], mode="shadow", alarm_on="v")]}]}]}]}],
        "storage": {"backend": "embedded", "data_dir": str(data_dir), "retention_raw": "36500d"}}


def connector_doc(port, devices, **kw) -> dict:
    return {"type": "modbus", "name": "plc", "transport": {"kind": "tcp", "host": "127.0.0.1", "port": port},
            "timeout_ms": 100, "reconnect_min": 0.05, "reconnect_max": 0.5, "devices": devices, **kw}


def device(path, unit, points, **kw):
    return {"device": f"{DEV}/{path}", "unit": unit, "poll": "50ms", "max_rps": 200, "points": points, **kw}


def start(doc: dict, cdoc: dict, audit=None) -> tuple[Platform, ModbusConnector]:
    """Through the platform's own connector list when the plant model has one; a connector with an audit
    callback is added as a source (the platform builds connectors with default arguments)."""
    if "connectors" in PlantConfig.model_fields and audit is None:
        platform = Platform(parse_config({**doc, "connectors": [cdoc]})).start()
        (conn,) = [s for s in platform.sources if isinstance(s, ModbusConnector)]
        return platform, conn
    platform = Platform(parse_config(doc)).start()
    conn = ModbusConnector(ModbusConfig.model_validate(cdoc), platform.pipeline, audit=audit)
    platform.add_source(conn)
    return platform, conn


def rows(platform, tag):
    return platform.services.telemetry.query_raw(tag, 0, time.time_ns() // 1000 + 10**9)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ModbusServer(LAYOUT, tmp_path_factory.mktemp("mb"), silent_missing=True) as s:
        yield s


@pytest.fixture(scope="module")
def running(server, tmp_path_factory):
    audit: list[dict] = []
    pts1 = [{"id": i, "table": t, "address": a, "data_type": dt, **x} for i, t, a, dt, x, _ in POINTS1]
    cdoc = connector_doc(server.port, [
        device("plc1", 1, pts1, report={"heartbeat": "1h"}),
        device("plc2", 2, [{"id": "v", "address": 0}], report={"heartbeat": "1h"}),
        device("plc7", 7, [{"id": "v", "address": 0}]),  # no such unit: the server stays silent
        device("pilot", 2, [{"id": "v", "address": 0}]),
    ])
    platform, conn = start(plant_doc(tmp_path_factory.mktemp("data")), cdoc, audit=audit.append)
    links = conn.links
    wait_for(lambda: all(links.get(f"{DEV}/{d}") and links[f"{DEV}/{d}"].requests >= 10 for d in ("plc1", "plc2", "pilot")),
             what="ten polls of every answering device")
    yield platform, conn, audit
    platform.stop()


def test_all_types_and_orders_stored_with_their_values(running):
    platform, conn, _ = running
    latest = platform.services.telemetry.latest([f"{DEV}/plc1/{p[0]}" for p in POINTS1])
    for pid, *_, expected in POINTS1:
        got = latest[f"{DEV}/plc1/{pid}"]
        if expected is None:
            continue
        assert got is not None and got["quality"] == 0, pid
        assert got["value"] == pytest.approx(expected, rel=1e-6), pid
    assert conn.health()["links"][f"{DEV}/plc1"]["strings"] == {}  # no string point configured here
    assert len(conn.devices[0].blocks) == 6  # holding 0-19, 40, 500; input; coil; discrete


def test_exception_response_becomes_bad_quality(running):
    platform, conn, _ = running
    got = platform.services.telemetry.latest([f"{DEV}/plc1/gone"])[f"{DEV}/plc1/gone"]
    assert got is not None and got["quality"] == 2
    h = conn.health()["links"][f"{DEV}/plc1"]
    assert h["modbus_exceptions"].get("2 illegal data address", 0) >= 1 and h["bad_readings"] >= 1
    assert h["state"] == "online"  # a device fault is not a link failure


def test_silent_unit_backs_off_without_stopping_the_others(running):
    _, conn, _ = running
    silent = conn.links[f"{DEV}/plc7"]
    before = {d: conn.links[f"{DEV}/{d}"].requests for d in ("plc1", "plc2")}
    wait_for(lambda: all(conn.links[f"{DEV}/{d}"].requests >= before[d] + 10 for d in before), what="others keep polling")
    assert silent.state == "backoff" and silent.errors >= 1 and "no answer" in silent.last_error
    assert conn.links[f"{DEV}/plc1"].state == "online" and conn.links[f"{DEV}/plc2"].state == "online"


def test_report_by_exception_sends_unchanged_values_once(running):
    platform, conn, _ = running
    n = conn.links[f"{DEV}/plc2"].requests
    assert n >= 10
    assert len(rows(platform, f"{DEV}/plc2/v").ts) == 1  # ten polls, one unchanged value, heartbeat 1 h


def test_shadow_device_stores_data_but_raises_no_alarm(running):
    platform, _, _ = running
    wait_for(lambda: platform.services.telemetry.latest([f"{DEV}/pilot/v"])[f"{DEV}/pilot/v"] is not None, what="pilot reading")
    assert platform.services.telemetry.latest([f"{DEV}/pilot/v"])[f"{DEV}/pilot/v"]["value"] == 222
    wait_for(lambda: any(a.tag == f"{DEV}/plc2/v" and a.active for a in platform.services.alarms.engine.list()), what="live alarm")
    assert not any(a.tag.startswith(f"{DEV}/pilot/") for a in platform.services.alarms.engine.list())


def test_writes_refused_unless_writable_and_always_audited(running):
    platform, conn, audit = running
    with pytest.raises(WriteRefused):
        asyncio.run(conn.write(f"{DEV}/plc1/i16", 5, user="alice"))
    with pytest.raises(WriteRefused):
        asyncio.run(conn.write(f"{DEV}/plc1/nope", 5, user="alice"))
    rec = asyncio.run(conn.write(f"{DEV}/plc1/sp", 750, user="bob"))
    assert rec["result"] == "ok" and rec["old_value"] == 500 and rec["registers"] == [750]
    asyncio.run(conn.write(f"{DEV}/plc1/coil", 0, user="bob"))
    assert [(a["user"], a["point"].rsplit("/", 1)[1], a["result"].split(":")[0]) for a in audit] == [
        ("alice", "i16", "refused"), ("alice", "nope", "refused"), ("bob", "sp", "ok"), ("bob", "coil", "ok")]
    wait_for(lambda: platform.services.telemetry.latest([f"{DEV}/plc1/sp"])[f"{DEV}/plc1/sp"]["value"] == 750, what="written value read back")
    wait_for(lambda: platform.services.telemetry.latest([f"{DEV}/plc1/coil"])[f"{DEV}/plc1/coil"]["value"] == 0, what="coil read back")
    assert [r for r in rows(platform, f"{DEV}/plc1/sp").value.tolist()] == [500, 750]  # the change, not every poll


def test_server_restart_reconnects_by_itself(tmp_path):
    srv = ModbusServer(LAYOUT, tmp_path).start()
    platform, conn = start(plant_doc(tmp_path / "data"), connector_doc(srv.port, [
        device("plc2", 2, [{"id": "v", "address": 0}], report={"heartbeat": "0s"})]))
    h = conn.links[f"{DEV}/plc2"] if f"{DEV}/plc2" in conn.links else None
    try:
        wait_for(lambda: conn.links.get(f"{DEV}/plc2") and conn.links[f"{DEV}/plc2"].readings >= 3, what="first readings")
        h = conn.links[f"{DEV}/plc2"]
        srv.stop()
        wait_for(lambda: h.state == "backoff", what="link down")
        down_at = time.time_ns() // 1000
        srv.start()  # same port, fresh process
        wait_for(lambda: h.state == "online" and h.last_ok > down_at, what="reconnected")
        wait_for(lambda: rows(platform, f"{DEV}/plc2/v").ts.max() > down_at, what="readings after the restart")
        assert h.reconnects >= 1 and conn.health()["ok"]
    finally:
        platform.stop()
        srv.stop()


def _pty_pair():
    """Two pseudo-terminals joined back to back (what `socat pty,raw pty,raw` does): returns the two device
    paths and a stop function."""
    m1, s1 = pty.openpty()
    m2, s2 = pty.openpty()
    for fd in (s1, s2):
        tty.setraw(fd)
    stop = threading.Event()

    def pump(a, b):
        import select

        while not stop.is_set():
            r, _, _ = select.select([a], [], [], 0.05)
            if r:
                try:
                    data = os.read(a, 4096)
                except OSError:
                    return
                os.write(b, data)

    ts = [threading.Thread(target=pump, args=(m1, m2), daemon=True), threading.Thread(target=pump, args=(m2, m1), daemon=True)]
    for t in ts:
        t.start()

    def close():
        stop.set()
        for t in ts:
            t.join(1)
        for fd in (m1, m2, s1, s2):
            os.close(fd)

    return os.ttyname(s1), os.ttyname(s2), close


def test_rtu_over_a_pseudo_terminal_pair(tmp_path):
    a, b, close = _pty_pair()
    srv = ModbusServer(LAYOUT, tmp_path, serial=a).start()
    cdoc = {"type": "modbus", "name": "rtu", "timeout_ms": 300, "reconnect_min": 0.05, "reconnect_max": 0.5,
            "transport": {"kind": "rtu", "serial_port": b, "baudrate": 115200, "parity": "N"},
            "devices": [device("plc1", 1, [{"id": "f_bb", "address": 0, "data_type": "float32"},
                                           {"id": "i32", "address": 10, "data_type": "int32"}]),
                        device("plc2", 2, [{"id": "v", "address": 0}])]}
    platform, conn = start(plant_doc(tmp_path / "data"), cdoc)
    try:
        tags = [f"{DEV}/plc1/f_bb", f"{DEV}/plc1/i32", f"{DEV}/plc2/v"]
        wait_for(lambda: all(platform.services.telemetry.latest(tags).values()), what="RTU readings")
        got = platform.services.telemetry.latest(tags)
        assert [got[t]["value"] for t in tags] == [21.5, -100000, 222]
    finally:
        platform.stop()
        srv.stop()
        close()


def test_probe_reports_blocks_rates_and_risks(server):
    cfg = ModbusConfig.model_validate(connector_doc(server.port, [
        device("plc1", 1, [{"id": "a", "address": 0}, {"id": "gone", "address": 500}], poll="10ms", max_rps=200),
        device("plc7", 7, [{"id": "v", "address": 0}])]))
    r1, r7 = asyncio.run(ModbusConnector.probe(cfg, max_rps=100, duration_s=2))
    assert r1.reachable and r1.connect_ms is not None
    assert [(i.target, i.ok) for i in r1.items] == [("holding 0-0", True), ("holding 500-500", False)]
    assert "exception 2" in r1.items[1].detail
    assert r1.safe_poll_rps is not None and r1.planned_rps == 200
    assert any("block(s) return errors" in r for r in r1.risks)
    assert any("does not answer" in r for r in r7.risks)


def test_a_quarantined_device_is_not_written_and_every_attempt_is_audited(running):
    from plantguard.domain.actor import Actor
    from plantguard.security.audit import read_entries

    platform, conn, audit = running
    q = platform.services.quarantine
    q.quarantine(f"{DEV}/plc1", Actor.user("ann"), "unplanned firmware change")
    try:
        with pytest.raises(WriteRefused, match="quarantined"):
            asyncio.run(conn.write(f"{DEV}/plc1/sp", 123, user="bob"))
        assert audit[-1]["result"].startswith("refused: device") and audit[-1]["value"] == 123
        assert "registers" not in audit[-1]  # refused before anything was encoded or sent
    finally:
        q.release(f"{DEV}/plc1", Actor.user("carol"), "the change was planned", "discard")
    rec = asyncio.run(conn.write(f"{DEV}/plc1/sp", 500, user="bob"))  # released: writes go through again
    assert rec["result"] == "ok"
    writes = [(e.actor, e.result) for e in read_entries(platform.store) if e.action == "device.write"]
    assert ("user:bob", "refused") in writes and writes[-1] == ("user:bob", "ok")


def test_a_write_outside_its_window_is_refused_and_raised_as_a_security_event(running):
    import datetime as dt

    from plantguard.security.events import list_events
    from plantguard.security.writes import DAYS, WriteWindow

    platform, conn, audit = running
    gate = platform.services.write_gate
    today = DAYS[dt.datetime.now(dt.timezone.utc).weekday()]
    closed = [d for d in DAYS if d not in (today, DAYS[(DAYS.index(today) - 1) % 7])]  # not today, nor last night
    gate.windows = [WriteWindow(path=f"{DEV}/plc1", days=closed, start="00:00", end="23:59")]
    try:
        with pytest.raises(WriteRefused, match="write window"):
            asyncio.run(conn.write(f"{DEV}/plc1/sp", 321, user="mallory"))
        assert "registers" not in audit[-1]
        ev = list_events(platform.store, rule="access.write_outside_window")
        assert ev and ev[0].device == f"{DEV}/plc1" and ev[0].evidence["user"] == "mallory"
        gate.windows = [WriteWindow(path=f"{DEV}", start="00:00", end="00:00")]  # over midnight, all day: open
        assert asyncio.run(conn.write(f"{DEV}/plc1/sp", 500, user="bob"))["result"] == "ok"
    finally:
        gate.windows = []
