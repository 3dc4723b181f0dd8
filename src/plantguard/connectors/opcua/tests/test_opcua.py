"""OPC UA connector against a real asyncua server on a loopback port: end to end through a real Platform
(embedded store), deadband, bad status, server restart with subscription recovery, SignAndEncrypt with
generated certificates, browse/import, probe, and configuration checks."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography import x509

from plantguard.testing.wait import wait_for
from plantguard.connectors.opcua.browse import browse, to_yaml
from plantguard.connectors.opcua.config import OpcUaConfig
from plantguard.connectors.opcua.connector import OpcUaConnector, quality_of, to_number
from plantguard.connectors.registry import validate as validate_connectors
from plantguard.domain.model import PlantConfig
from plantguard.config import parse_config
from plantguard.errors import ConfigError
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict

DEVICE = "s1/a1/l1/pump1/plc1"
FAR = 10**18
NS = "urn:plantguard:test"
CLIENT_URI = "urn:plantguard:opcua:client"
SERVER_URI = "urn:plantguard:test:server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UaServer:
    """An asyncua server in its own thread and loop; start() can be called again after stop() on the same port."""

    def __init__(self, port: int, certs: dict | None = None) -> None:
        self.port = port
        self.url = f"opc.tcp://127.0.0.1:{port}/pg/"
        self.certs = certs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Server | None = None
        self.idx = 2

    def call(self, coro, timeout: float = 20.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> "UaServer":
        self.call(self._start())
        return self

    async def _start(self) -> None:
        s = Server()
        await s.init()
        s.set_endpoint(self.url)
        s.set_server_name("plantguard test server")
        if self.certs:
            await s.set_application_uri(SERVER_URI)
            s.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            await s.load_certificate(str(self.certs["server_cert"]))
            await s.load_private_key(str(self.certs["server_key"]))
            store = TrustStore([Path(self.certs["trusted_dir"])], [])
            await store.load()
            s.set_certificate_validator(CertificateValidator(
                CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, store))
        self.idx = await s.register_namespace(NS)
        pump = await s.nodes.objects.add_object(ua.NodeId("Pump", self.idx), "Pump")
        await pump.add_variable(ua.NodeId("Pump.Speed", self.idx), "Speed", 0.0)
        temp = await pump.add_variable(ua.NodeId("Pump.Temp", self.idx), "Temp", 20.0)
        await temp.add_property(self.idx, "EngineeringUnits", ua.EUInformation(DisplayName=ua.LocalizedText("degC")))
        await temp.add_property(self.idx, "EURange", ua.Range(Low=-50.0, High=250.0))
        await pump.add_variable(ua.NodeId("Pump.Running", self.idx), "Running", False)
        await pump.add_variable(ua.NodeId("Pump.Label", self.idx), "Label", "P-101")
        await pump.add_variable(ua.NodeId(1001, self.idx), "Count", ua.Variant(0, ua.VariantType.Int32))
        await s.start()
        self.server = s

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.stop())
            self.server = None

    def write(self, name: str, value, vtype=ua.VariantType.Double, status=ua.StatusCodes.Good, source: datetime | None = None) -> None:
        async def w():
            dv = ua.DataValue(ua.Variant(value, vtype), StatusCode=ua.StatusCode(status),
                              SourceTimestamp=source or datetime.now(timezone.utc), ServerTimestamp=datetime.now(timezone.utc))
            await self.server.write_attribute_value(ua.NodeId(name, self.idx), dv)
        self.call(w())

    def historize(self, name: str) -> None:
        """Keeps the node's value changes in the server's (in-memory) history, so HistoryRead can serve them."""
        async def h():
            from datetime import timedelta

            await self.server.historize_node_data_change(self.server.get_node(ua.NodeId(name, self.idx)),
                                                          period=timedelta(days=1), count=10_000)
        self.call(h())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def server():
    s = UaServer(free_port()).start()
    yield s
    s.close()


def nodes(deadband: float = 0.0) -> list[dict]:
    return [
        {"point": "p0", "node_id": "ns=2;s=Pump.Speed", "sampling_interval": 50, "deadband": deadband},
        {"point": "p1", "node_id": "ns=2;s=Pump.Temp", "sampling_interval": 50},
        {"point": "p2", "node_id": "ns=2;s=Pump.Running", "sampling_interval": 50},
    ]


def connector(url: str, **kw) -> dict:
    c = {"type": "opcua", "name": "ua1", "endpoint": url, "reconnect_min": 0.1, "reconnect_max": 0.5,
         "watchdog_interval": 0.5, "keepalive": 1.0, "timeout": 2.0,
         "devices": [{"device": DEVICE, "publishing_interval": 100, "nodes": nodes()}]}
    c.update(kw)
    return c


def start_platform(data_dir, conn: dict) -> Platform:
    d = plant_dict(3, data_dir=str(data_dir), alarms=False)
    if "connectors" in PlantConfig.model_fields:
        return Platform(parse_config({**d, "connectors": [conn]})).start()
    p = Platform(parse_config(d)).start()  # older plant model without a connectors section
    for cls, ccfg in validate_connectors([conn]):
        p.add_source(cls(ccfg, p.pipeline, clock=p.clock))
    return p


def link(p: Platform) -> dict:
    return next(iter(p.services.status.health()["sources"]["ua1"]["links"].values()))


def tasks(p: Platform) -> int:
    """Tasks alive in the connector's event loop."""
    conn = next(s for s in p.sources if isinstance(s, OpcUaConnector))

    async def count() -> int:
        return len(asyncio.all_tasks())
    return asyncio.run_coroutine_threadsafe(count(), conn._loop).result(5)


def series(p: Platform, point: str):
    return p.services.telemetry.query_raw(f"{DEVICE}/{point}", 0, FAR)


def has_value(p: Platform, point: str, v: float) -> bool:
    return v in series(p, point).value.tolist()


# -- pure parts -------------------------------------------------------------------------------------------------
def test_quality_and_number_mapping():
    assert quality_of(ua.StatusCodes.Good) == 0
    assert quality_of(ua.StatusCodes.UncertainLastUsableValue) == 1
    assert quality_of(ua.StatusCodes.BadSensorFailure) == 2
    assert to_number(True) == 1.0 and to_number(False) == 0.0 and to_number(7) == 7.0
    assert to_number("x") is None and to_number(float("nan")) is None and to_number([1, 2]) is None


def test_config_errors_are_all_reported_with_paths(tmp_path):
    bad = {"type": "opcua", "name": "ua1", "endpoint": "http://x", "password": "changeme", "username": "op",
           "security": {"mode": "SignAndEncrypt", "server_certificate": str(tmp_path / "missing.der")},
           "devices": [{"device": DEVICE, "nodes": [
               {"point": "p0", "node_id": "ns=2;x=Pump"},
               {"point": "p0", "node_id": "ns=2;i=1001", "sampling_interval": 0},
               {"point": "p2", "node_id": "ns=2;i=1001", "sampling_interval": -5},
           ]}, {"device": "not/a/path", "nodes": [{"point": "a b", "node_id": "i=85"}]}]}
    with pytest.raises(ConfigError) as ei:
        validate_connectors([bad])
    got = {p.path: p.message for p in ei.value.problems}
    c = "connectors[0]"
    for path in ("endpoint", "password", "security.certificate", "security.private_key", "security.server_certificate",
                 "devices[0].nodes[0].node_id", "devices[0].nodes[1].point", "devices[0].nodes[1].sampling_interval",
                 "devices[0].nodes[2].node_id", "devices[0].nodes[2].sampling_interval", "devices[1].device",
                 "devices[1].nodes[0].point"):
        assert f"{c}.{path}" in got, (path, got)
    assert "duplicate point id" in got[f"{c}.devices[0].nodes[1].point"]
    assert "placeholder" in got[f"{c}.password"]
    # structural errors come with their paths too
    with pytest.raises(ConfigError) as ei:
        validate_connectors([{"type": "opcua", "name": "u", "endpoint": "opc.tcp://h:4840",
                              "devices": [{"device": DEVICE, "nodes": [{"point": "p", "node_id": "i=1", "deadband": -1}]}]}])
    assert [p.path for p in ei.value.problems] == ["connectors[0].devices[0].nodes[0].deadband"]


# -- end to end --------------------------------------------------------------------------------------------------
def test_changes_arrive_with_source_timestamps_deadband_and_bad_status(server, data_dir):
    conn = connector(server.url)
    conn["devices"][0]["nodes"] = nodes(deadband=5.0)
    conn["devices"][0]["nodes"].append({"point": "label", "node_id": "ns=2;s=Pump.Label", "sampling_interval": 50})
    p = start_platform(data_dir, conn)
    try:
        wait_for(lambda: link(p)["state"] == "online", "the session to come online")
        src = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
        server.write("Pump.Speed", 100.0, source=src)
        wait_for(lambda: has_value(p, "p0", 100.0), "speed 100 to be stored")
        s = series(p, "p0")
        i = s.value.tolist().index(100.0)
        assert int(s.ts[i]) == int(src.timestamp() * 1_000_000)
        # below the deadband: suppressed by the server; then a big step passes
        server.write("Pump.Speed", 102.0)
        server.write("Pump.Temp", 21.5)  # a marker: once it is stored, the 102 would have been too
        wait_for(lambda: has_value(p, "p1", 21.5), "temp 21.5")
        server.write("Pump.Speed", 110.0)
        wait_for(lambda: has_value(p, "p0", 110.0), "speed 110")
        assert not has_value(p, "p0", 102.0)
        # bool -> 1.0; bad status -> quality 2
        server.write("Pump.Running", True, ua.VariantType.Boolean)
        wait_for(lambda: has_value(p, "p2", 1.0), "running = 1")
        server.write("Pump.Temp", 22.0, status=ua.StatusCodes.BadSensorFailure)
        wait_for(lambda: 2 in series(p, "p1").quality.tolist(), "a bad-quality temp reading")
        q = series(p, "p1")
        # a bad DataValue may come without a value; the reading then keeps the last one
        assert q.value[q.quality.tolist().index(2)] in (22.0, 21.5)
        # text is counted and reported, the connector keeps running
        wait_for(lambda: link(p)["non_numeric"] >= 1, "the text value to be counted")
        server.write("Pump.Speed", 130.0)
        wait_for(lambda: has_value(p, "p0", 130.0), "speed 130 after the text value")
        h = link(p)
        assert h["notifications"] > 0 and h["subscriptions"] == 1 and h["failed_nodes"] == []
    finally:
        p.stop()


def test_server_restart_restores_the_subscription(server, data_dir):
    p = start_platform(data_dir, connector(server.url))
    try:
        wait_for(lambda: link(p)["state"] == "online", "online")
        server.write("Pump.Speed", 1.0)
        wait_for(lambda: has_value(p, "p0", 1.0), "first value")
        tasks_before = tasks(p)
        server.stop()
        wait_for(lambda: link(p)["state"] == "backoff", "the loss to be detected")
        server.start()  # same port, a new server: the old session and subscription are gone
        wait_for(lambda: link(p)["state"] == "online", "the link to recover", timeout=20)
        assert link(p)["reconnects"] >= 1 and link(p)["last_error"]
        server.write("Pump.Speed", 2.0)
        wait_for(lambda: has_value(p, "p0", 2.0), "a value after the restart")
        server.stop()
        server.start()
        wait_for(lambda: link(p)["state"] == "online" and link(p)["reconnects"] >= 2, "a second recovery", timeout=20)
        server.write("Pump.Speed", 3.0)
        wait_for(lambda: has_value(p, "p0", 3.0), "a value after the second restart")
        assert tasks(p) <= tasks_before + 2  # nothing of the dead sessions is left running (slack: in-flight calls)
    finally:
        p.stop()


def test_values_changed_while_the_session_was_down_are_recovered_from_history_or_counted_as_a_gap(server, data_dir):
    server.historize("Pump.Speed")  # p0 is historized by the server; p1 (Pump.Temp) and p2 (Pump.Running) are not
    p = start_platform(data_dir, connector(server.url))
    conn = next(s for s in p.sources if isinstance(s, OpcUaConnector))
    try:
        wait_for(lambda: link(p)["state"] == "online", "online")
        server.write("Pump.Speed", 1.0)
        server.write("Pump.Temp", 21.0)
        wait_for(lambda: has_value(p, "p0", 1.0) and has_value(p, "p1", 21.0), "first values")
        conn.stop()  # the session is down; the server goes on changing
        for k in range(1, 6):
            server.write("Pump.Speed", 10.0 + k)
            server.write("Pump.Temp", 30.0 + k)
            time.sleep(0.01)  # distinct source timestamps, as a sampling server gives them
        time.sleep(0.3)
        conn.start()
        wait_for(lambda: all(has_value(p, "p0", 10.0 + k) for k in range(1, 6)), "the missed values from history")
        # nodes are recovered in order (p0 from history, then the gaps of p1 and p2): wait for the whole pass
        wait_for(lambda: link(p)["gaps"] >= 2, "the two gaps to be counted")
        h = link(p)
        assert h["backfilled"] >= 5 and h["gaps"] == 2
        wait_for(lambda: has_value(p, "p1", 35.0), "the current value with the new subscription")
        assert not has_value(p, "p1", 31.0)  # lost: not historized, and counted as a gap
        wait_for(lambda: len(p.store.dead_letters(code="gap")) >= 2, "the gaps' dead letters to be stored")
        gaps = {d["point"]: d["reason"] for d in p.store.dead_letters(code="gap")}
        assert set(gaps) == {f"{DEVICE}/p1", f"{DEVICE}/p2"} and "keeps no history" in gaps[f"{DEVICE}/p1"]
    finally:
        p.stop()


def test_unknown_node_is_reported_and_others_flow(server, data_dir):
    conn = connector(server.url)
    conn["devices"][0]["nodes"][2]["node_id"] = "ns=2;s=Pump.Missing"
    p = start_platform(data_dir, conn)
    try:
        wait_for(lambda: link(p)["state"] == "online", "online")
        assert link(p)["failed_nodes"] and "BadNodeIdUnknown" in link(p)["failed_nodes"][0]
        server.write("Pump.Speed", 5.0)
        wait_for(lambda: has_value(p, "p0", 5.0), "the other nodes to flow")
    finally:
        p.stop()


# -- security ----------------------------------------------------------------------------------------------------
def _cert(dir_: Path, name: str, uri: str, use) -> tuple[Path, Path]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, uri, {}, [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"), x509.DNSName(socket.gethostname())],
        extended=use)
    c, k = dir_ / f"{name}.der", dir_ / f"{name}.pem"
    c.write_bytes(cert.public_bytes(Encoding.DER))
    k.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return c, k


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    trusted = d / "trusted"
    trusted.mkdir()
    sc, sk = _cert(d, "server", SERVER_URI, [ExtendedKeyUsageOID.SERVER_AUTH])
    cc, ck = _cert(d, "client", CLIENT_URI, [ExtendedKeyUsageOID.CLIENT_AUTH])
    oc, ok = _cert(d, "other", CLIENT_URI, [ExtendedKeyUsageOID.CLIENT_AUTH])
    (trusted / "client.der").write_bytes(cc.read_bytes())
    return {"server_cert": sc, "server_key": sk, "client_cert": cc, "client_key": ck, "other_cert": oc,
            "other_key": ok, "trusted_dir": trusted}


@pytest.fixture
def secure_server(certs):
    s = UaServer(free_port(), certs).start()
    yield s
    s.close()


def secure(certs, cert="client_cert", key="client_key", server_cert="server_cert") -> dict:
    return {"mode": "SignAndEncrypt", "policy": "Basic256Sha256", "certificate": str(certs[cert]),
            "private_key": str(certs[key]), "server_certificate": str(certs[server_cert])}


def test_sign_and_encrypt_with_trusted_certificates(secure_server, certs, data_dir):
    p = start_platform(data_dir, connector(secure_server.url, security=secure(certs)))
    try:
        wait_for(lambda: link(p)["state"] == "online", "the secure session")
        secure_server.write("Pump.Speed", 42.0)
        wait_for(lambda: has_value(p, "p0", 42.0), "a value over SignAndEncrypt")
    finally:
        p.stop()
    res = asyncio.run(OpcUaConnector.probe(OpcUaConfig.model_validate(connector(secure_server.url, security=secure(certs))),
                                           duration_s=0.2))[0]
    assert res.reachable and not any("security mode None" in r for r in res.risks)


def test_untrusted_client_certificate_fails_clearly(secure_server, certs):
    cfg = OpcUaConfig.model_validate(connector(secure_server.url, security=secure(certs, "other_cert", "other_key")))
    res = asyncio.run(OpcUaConnector.probe(cfg, duration_s=0.2))[0]
    assert not res.reachable
    assert any("does not trust the client certificate" in r or "security checks failed" in r for r in res.risks), res.risks


def test_wrong_server_certificate_fails_clearly(secure_server, certs):
    # the client pins a certificate the server does not have
    cfg = OpcUaConfig.model_validate(connector(secure_server.url, security=secure(certs, server_cert="other_cert")))
    res = asyncio.run(OpcUaConnector.probe(cfg, duration_s=0.2))[0]
    assert not res.reachable and "cannot connect" in res.risks[-1] and "server_certificate" in res.risks[-1], res.risks


def test_no_security_fails_on_a_secure_only_server(secure_server, certs, data_dir):
    p = start_platform(data_dir, connector(secure_server.url))
    try:
        wait_for(lambda: link(p)["state"] == "backoff" and link(p)["last_error"], "the refusal")
        assert "ConnectFailed" in link(p)["last_error"] or "SecurityRejected" in link(p)["last_error"]
    finally:
        p.stop()


# -- browse and probe ----------------------------------------------------------------------------------------------
def test_browse_produces_points_with_units_and_ranges(server):
    cfg = OpcUaConfig.model_validate(connector(server.url))
    out = asyncio.run(browse(cfg, device=DEVICE))
    pts = {p["id"]: p for p in out["points"]}
    assert pts["Pump_Temp"]["unit"] == "degC" and pts["Pump_Temp"]["range"] == {"low": -50.0, "high": 250.0}
    assert pts["Pump_Running"]["data_type"] == "bool" and pts["Pump_Count"]["data_type"] == "int"
    assert "Pump_Label" not in pts and any("Label" in s for s in out["skipped"])
    node_ids = {n["point"]: n["node_id"] for n in out["connector"]["devices"][0]["nodes"]}
    assert node_ids["Pump_Speed"] == "ns=2;s=Pump.Speed" and node_ids["Pump_Count"] == "ns=2;i=1001"
    # the fragment is valid configuration for both the plant model and the connector
    text = to_yaml(out)
    assert "Pump_Temp" in text
    OpcUaConfig.model_validate({**connector(server.url), "devices": out["connector"]["devices"]})
    d = plant_dict(0)
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"] = out["points"]
    parse_config(d)


def test_probe_reads_nodes_and_reports_risks(server):
    conn = connector(server.url)
    conn["devices"][0]["nodes"].append({"point": "gone", "node_id": "ns=2;s=Nope", "sampling_interval": 50})
    res = asyncio.run(OpcUaConnector.probe(OpcUaConfig.model_validate(conn), duration_s=0.3))[0]
    assert res.reachable and res.connect_ms is not None
    assert [i.ok for i in res.items] == [True, True, True, False]
    assert any("security mode None" in r for r in res.risks)
    assert any("ns=2;s=Nope" in r and "does not exist" in r for r in res.risks)
    assert res.latency_ms_p50 is not None and res.latency_ms_p95 >= res.latency_ms_p50
    down = asyncio.run(OpcUaConnector.probe(OpcUaConfig.model_validate(connector(f"opc.tcp://127.0.0.1:{free_port()}")),
                                            duration_s=0.1))[0]
    assert not down.reachable and any("connection refused" in r for r in down.risks)
