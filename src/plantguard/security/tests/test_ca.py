"""The built-in certificate authority: certificates and the CRL checked with the cryptography library, then on a
real Mosquitto with a mutual-TLS listener that takes the CA's device certificates (use_identity_as_username) and its
CRL: a device publishes only under its own topic, a revoked or quarantined device is refused, a rotated certificate
keeps working for its overlap only, and plantguard's own ingest client reads over TLS with its certificate."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from plantguard.config import parse_config
from plantguard.domain.actor import Actor
from plantguard.errors import InvalidInput, NotFound
from plantguard.runtime import Platform
from plantguard.security.broker import listener_conf
from plantguard.security.ca import verify_chain
from plantguard.testing.factories import plant_dict
from plantguard.testing.mosquitto import MosquittoBroker, MosquittoUnavailable, free_port
from plantguard.testing.wait import wait_for

PREFIX = "plantguard/v1"
A, B = "s1/a1/l1/pump1/plc1", "s1/a1/l1/pump1/plc2"
ADMIN = Actor.system("tests")


def two_devices(tmp_path, **security) -> dict:
    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    dev = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"]
    dev.append({**dev[0], "id": "plc2"})
    if security:
        d["security"] = security
    return d


@pytest.fixture
def platform(tmp_path):
    p = Platform(parse_config(two_devices(tmp_path)))
    yield p
    p.stop()


def csr(key, cn="anything") -> str:
    req = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    return req.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_a_device_certificate_chains_to_the_ca_and_names_the_device(platform):
    ca = platform.services.ca
    cert = ca.issue(A, ADMIN)
    c = x509.load_pem_x509_certificate(cert.cert_pem.encode())
    assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == A
    assert verify_chain(cert.cert_pem, ca.ca_pem(), ca.crl(), at_us=platform.clock()) is None
    assert cert.key_pem and "PRIVATE KEY" in cert.key_pem  # shown once...
    assert "PRIVATE KEY" not in str(platform.store.fetch("SELECT * FROM device_certificates"))  # ...never kept
    assert (Path(platform.cfg.storage.data_dir) / "ca" / "ca.key").stat().st_mode & 0o077 == 0
    with pytest.raises(NotFound):
        ca.issue("s1/a1/l1/pump1/nope", ADMIN)


def test_a_csr_keeps_the_key_on_the_device_and_weak_or_forged_ones_are_refused(platform):
    ca = platform.services.ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.issue(A, ADMIN, csr_pem=csr(key))
    assert cert.key_pem is None
    c = x509.load_pem_x509_certificate(cert.cert_pem.encode())
    assert c.public_key().public_numbers() == key.public_key().public_numbers()
    # the subject is the device, whatever the CSR asked for
    assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == A
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidInput, match="too weak"):
        ca.issue(A, ADMIN, csr_pem=csr(weak))
    with pytest.raises(InvalidInput, match="PEM"):
        ca.issue(A, ADMIN, csr_pem="-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n")
    with pytest.raises(InvalidInput, match="at most"):
        ca.issue(A, ADMIN, csr_pem="x" * 100_000)
    # a CSR whose signature was made by another key (the public key swapped in)
    good = csr(key).encode()
    other = csr(ec.generate_private_key(ec.SECP256R1())).encode()
    der_good = x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER)
    pub_good = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    other_key = x509.load_pem_x509_csr(other).public_key().public_bytes(serialization.Encoding.DER,
                                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = der_good.replace(pub_good, other_key)
    assert forged != der_good
    import base64

    pem = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(forged) + b"-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(InvalidInput, match="signature"):
        ca.issue(A, ADMIN, csr_pem=pem)


def test_revocation_hold_and_rotation_in_the_crl(platform):
    ca = platform.services.ca
    now = [platform.clock()]
    ca.clock = lambda: now[0]
    a1 = ca.issue(A, ADMIN)
    b1 = ca.issue(B, ADMIN)

    def refused(cert) -> str | None:
        return verify_chain(cert.cert_pem, ca.ca_pem(), x509.load_pem_x509_crl(ca.crl_path.read_bytes()), at_us=now[0])

    assert refused(a1) is None and refused(b1) is None
    a2 = ca.rotate(A, ADMIN, overlap_s=3600)
    assert refused(a1) is None and refused(a2) is None  # both during the overlap
    now[0] += 3601 * 1_000_000
    ca.on_tick(now[0])  # the overlap ended: the CRL is renewed without any other change
    assert refused(a1) == "revoked" and refused(a2) is None
    entry = x509.load_pem_x509_crl(ca.crl_path.read_bytes()).get_revoked_certificate_by_serial_number(int(a1.serial, 16))
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded
    ca.suspend(B, True, ADMIN)
    assert refused(b1) == "revoked"
    ca.suspend(B, False, ADMIN)
    assert refused(b1) is None  # a hold is lifted; a revocation is not
    assert ca.revoke(A, ADMIN, reason="key_compromise") == 2  # the superseded one too: its key may be the one lost
    assert refused(a2) == "revoked"
    with pytest.raises(NotFound):
        ca.revoke(A, ADMIN)
    with pytest.raises(InvalidInput):
        ca.revoke(B, ADMIN, reason="certificate_hold")
    assert ca.active_devices() == {B}
    assert verify_chain(a2.cert_pem, ca.ca_pem(), None, at_us=now[0] + 400 * 86400 * 1_000_000) == "outside its validity"
    from plantguard.security.audit import read_entries

    actions = {e.action for e in read_entries(platform.store)}
    assert {"device.certificate.issue", "device.certificate.rotate", "device.certificate.revoke",
            "device.certificate.hold", "device.certificate.release"} <= actions


def test_a_certificate_of_another_ca_is_refused(platform, tmp_path):
    from plantguard.security.ca import CertificateAuthority

    other = CertificateAuthority(tmp_path / "other", platform.store, clock=platform.clock, devices=lambda: {A})
    forged = other.issue(A, ADMIN)
    assert verify_chain(forged.cert_pem, platform.services.ca.ca_pem(), platform.services.ca.crl(), at_us=platform.clock()).startswith("not issued")


def test_long_device_paths_and_odd_names_are_refused_for_certificates(platform):
    from plantguard.security.ca import _check_cn

    with pytest.raises(InvalidInput, match="64"):
        _check_cn("s/" * 40)
    with pytest.raises(InvalidInput):
        platform.services.ca.client("ingest\ntopic write #")


# -- on a real Mosquitto -----------------------------------------------------------------------------------------
def tls_client(broker_port, ca_file, cert_pem, key_pem, tmp: Path, timeout=5.0):
    """(client, connected): a TLS connection with a client certificate."""
    tag = f"{time.monotonic_ns()}"
    (tmp / f"{tag}.pem").write_text(cert_pem)
    (tmp / f"{tag}.key").write_text(key_pem)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{tag}", protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=str(ca_file), certfile=str(tmp / f"{tag}.pem"), keyfile=str(tmp / f"{tag}.key"))
    c.reconnect_delay_set(60, 120)
    result = {}
    c.on_connect = lambda cl, ud, flags, rc, props: result.setdefault("rc", rc.value if hasattr(rc, "value") else int(rc))
    try:
        c.connect("127.0.0.1", broker_port)
    except OSError:  # the handshake refused (revoked, unknown CA)
        return c, False
    c.loop_start()
    deadline = time.monotonic() + timeout
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.01)
    if result.get("rc") != 0:
        c.loop_stop()
        return c, False
    return c, True


@pytest.fixture
def mtls(tmp_path):
    bdir = tmp_path / "broker"
    bdir.mkdir()
    security = {"broker": {"password_file": str(bdir / "passwd"), "acl_file": str(bdir / "acl"), "pid_file": str(bdir / "mosquitto.pid")}}
    d = two_devices(tmp_path, **security)
    p = Platform(parse_config(d))
    ca = p.services.ca
    a, b = ca.issue(A, ADMIN), ca.issue(B, ADMIN)
    server_cert, server_key = ca.server("broker", ["127.0.0.1", "localhost"])
    (bdir / "server.pem").write_text(server_cert)
    (bdir / "server.key").write_text(server_key)
    ingest_cert, ingest_key = ca.client("plantguard-ingest")
    (bdir / "ingest.pem").write_text(ingest_cert)
    (bdir / "ingest.key").write_text(ingest_key)
    tls_port = free_port()
    conf = listener_conf(port=tls_port, host="127.0.0.1", ca_file=str(ca.cert_path), cert_file=str(bdir / "server.pem"),
                         key_file=str(bdir / "server.key"), crl_file=str(ca.crl_path))
    try:
        broker = MosquittoBroker(workdir=bdir, extra_conf=["allow_anonymous false", f"password_file {bdir / 'passwd'}",
                                                            f"acl_file {bdir / 'acl'}", *conf.splitlines()]).start()
    except MosquittoUnavailable as e:
        p.stop()
        pytest.fail(str(e))
    p.stop()
    d["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": tls_port, "client_id": "pg-mtls", "reconnect_min": 0.05,
                 "reconnect_max": 0.5, "tls": {"ca_file": str(ca.cert_path), "cert_file": str(bdir / "ingest.pem"),
                                               "key_file": str(bdir / "ingest.key")}}
    p = Platform(parse_config(d)).start()
    wait_for(lambda: p.services.status.health()["sources"]["mqtt"]["connected"], "the ingest client to connect over TLS with its certificate")
    yield p, broker, tls_port, a, b, tmp_path
    p.stop()
    broker.close()


def publish(client, topic, point, t, v):
    try:
        client.publish(topic, orjson.dumps({"readings": [{"p": point, "t": t, "v": v}]}), qos=1).wait_for_publish(5)
    except (RuntimeError, ValueError):
        pass  # the broker may drop a connection that publishes where its ACL denies


def test_devices_over_mutual_tls_own_topic_only_and_revocation_at_the_broker(mtls):
    p, broker, port, a, b, tmp = mtls
    ca_file = p.services.ca.cert_path
    t = int(time.time() * 1000) - 60_000
    ca_, ok = tls_client(port, ca_file, a.cert_pem, a.key_pem, tmp)
    assert ok
    publish(ca_, f"{PREFIX}/dev/{A}", "p0", t, 1.0)
    publish(ca_, f"{PREFIX}/dev/{B}", "p0", t, 66.0)  # device A as device B: denied by the ACL
    ca_.disconnect()
    ca_.loop_stop()
    cb, ok = tls_client(port, ca_file, b.cert_pem, b.key_pem, tmp)
    assert ok
    publish(cb, f"{PREFIX}/dev/{B}", "p1", t, 2.0)
    cb.disconnect()
    cb.loop_stop()
    wait_for(lambda: p.services.telemetry.latest([f"{A}/p0"])[f"{A}/p0"] is not None, "device A's own reading over TLS")
    wait_for(lambda: p.services.telemetry.latest([f"{B}/p1"])[f"{B}/p1"] is not None, "device B's own reading over TLS")
    assert p.services.telemetry.latest([f"{B}/p0"])[f"{B}/p0"] is None  # A never wrote as B
    # a certificate from another CA
    from plantguard.security.ca import CertificateAuthority

    rogue = CertificateAuthority(tmp / "rogue", p.store, clock=p.clock, devices=lambda: {A}).issue(A, ADMIN)
    p.store.execute([("DELETE FROM device_certificates WHERE serial = ?", (rogue.serial,))])
    assert not tls_client(port, ca_file, rogue.cert_pem, rogue.key_pem, tmp)[1]
    # revoked: the CRL is rewritten and the broker reloads it
    p.services.ca.revoke(A, ADMIN, reason="key_compromise")
    wait_for(lambda: not tls_client(port, ca_file, a.cert_pem, a.key_pem, tmp)[1], "the revoked certificate to be refused")
    c, ok = tls_client(port, ca_file, b.cert_pem, b.key_pem, tmp)
    assert ok  # the other device is untouched
    c.disconnect()
    c.loop_stop()


def test_quarantine_holds_the_certificate_and_release_lifts_it(mtls):
    p, broker, port, a, b, tmp = mtls
    ca_file = p.services.ca.cert_path
    p.services.quarantine.quarantine(B, Actor.user("ann"), "unexpected firmware")
    wait_for(lambda: not tls_client(port, ca_file, b.cert_pem, b.key_pem, tmp)[1], "a quarantined device to be refused")
    assert "s1/a1/l1/pump1/plc2" not in (Path(broker.dir) / "acl").read_text()
    p.services.quarantine.release(B, Actor.user("bob"), "planned change, work order 4711", "discard")

    def back() -> bool:
        c, ok = tls_client(port, ca_file, b.cert_pem, b.key_pem, tmp)
        if ok:
            c.disconnect()
            c.loop_stop()
        return ok

    wait_for(back, "the released device to be admitted again")


def test_a_rotated_certificate_works_for_its_overlap_only(mtls):
    p, broker, port, a, b, tmp = mtls
    ca_file = p.services.ca.cert_path
    new = p.services.ca.rotate(A, ADMIN, overlap_s=1)

    def works(cert) -> bool:
        c, ok = tls_client(port, ca_file, cert.cert_pem, cert.key_pem, tmp)
        if ok:
            c.disconnect()
            c.loop_stop()
        return ok

    assert works(new)

    def old_refused() -> bool:
        p.services.ca.on_tick(p.clock())  # what the platform's checkpoint loop does every audit_checkpoint_every
        return not works(a)

    wait_for(old_refused, "the superseded certificate to be refused once its overlap ended")
    assert works(new)


def test_the_cli_issues_lists_and_revokes_and_writes_the_listener_lines(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from plantguard.cli.main import app

    cfg = tmp_path / "plant.yaml"
    cfg.write_text(yaml.safe_dump(two_devices(tmp_path)))
    run = lambda *args: CliRunner().invoke(app, [*args, "-c", str(cfg)])  # noqa: E731
    out = tmp_path / "out"
    r = run("devices", "certificate", "issue", A, "--out", str(out))
    assert r.exit_code == 0, r.output
    key = out / (A.replace("/", "_") + ".key")
    assert key.stat().st_mode & 0o077 == 0 and "PRIVATE KEY" in key.read_text()
    r = run("devices", "certificate", "list")
    assert r.exit_code == 0 and f"{A}\t" in r.output and "\tlive\t" in r.output, r.output
    r = run("ca", "server-cert", "broker", "--host", "127.0.0.1", "--host", "mqtt.plant.local", "--out", str(out))
    assert r.exit_code == 0 and (out / "broker.pem").exists(), r.output
    r = run("ca", "listener", "--cert", str(out / "broker.pem"), "--key", str(out / "broker.key"))
    assert r.exit_code == 0 and "use_identity_as_username true" in r.output and "crlfile " in r.output, r.output
    r = run("devices", "certificate", "revoke", A, "--reason", "key_compromise")
    assert r.exit_code == 0 and "revoked 1" in r.output, r.output
    r = run("devices", "certificate", "revoke", A)
    assert r.exit_code != 0 and "no certificate" in r.output, r.output
    r = run("ca", "show")
    assert r.exit_code == 0 and "sha256" in r.output, r.output


def test_the_api_issues_from_a_csr_and_refuses_hostile_input(platform):
    from fastapi.testclient import TestClient

    from plantguard.api.app import create_app
    from plantguard.testing.auth import auth_headers

    base = "/api/security/devices"
    key = ec.generate_private_key(ec.SECP256R1())
    with TestClient(create_app(platform.services), base_url="http://127.0.0.1", headers=auth_headers(platform, "admin")) as c:
        r = c.post(f"{base}/{A}/certificates", json={"csr": csr(key)})
        assert r.status_code == 201 and r.json()["key_pem"] is None and r.json()["device"] == A, r.text
        serial = r.json()["serial"]
        assert [x["serial"] for x in c.get(f"{base}/{A}/certificates").json()] == [serial]
        assert "BEGIN CERTIFICATE" in c.get("/api/security/ca.pem").text
        assert "BEGIN X509 CRL" in c.get("/api/security/crl.pem").text
        for bad in ({"csr": "garbage"}, {"csr": "x" * 20_000}, {"days": 0}, {"days": 10**9}, {"csr": 5}, {"other": 1}):
            assert c.post(f"{base}/{A}/certificates", json=bad).status_code in (400, 422), bad
        assert c.post(f"{base}/s1/nope/certificates", json={}).status_code == 404
        assert c.post(f"{base}/{A}/certificates", content=b"{", headers={"content-type": "application/json"}).status_code == 422
        assert c.delete(f"{base}/{A}/certificates", params={"serial": "not hex!"}).status_code == 422
        assert c.delete(f"{base}/{A}/certificates", params={"reason": "certificate_hold"}).status_code == 422
        r = c.post(f"{base}/{A}/certificates/rotate", json={"overlap_s": 60})
        assert r.status_code == 201 and "PRIVATE KEY" in r.json()["key_pem"]
        assert c.delete(f"{base}/{A}/certificates", params={"serial": serial}).json()["revoked"] == 1
    with TestClient(create_app(platform.services), base_url="http://127.0.0.1", headers=auth_headers(platform, "viewer")) as c:
        assert c.post(f"{base}/{A}/certificates", json={}).status_code == 403
        assert c.delete(f"{base}/{A}/certificates").status_code == 403


def test_a_damaged_ca_is_a_clear_refusal_not_a_crash(platform):
    from plantguard.errors import Unavailable

    platform.services.ca.issue(A, ADMIN)  # made on first use
    key = Path(platform.cfg.storage.data_dir) / "ca" / "ca.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    platform.services.ca._ca = None  # as after a restart
    with pytest.raises(Unavailable, match="certificate authority"):
        platform.services.ca.issue(B, ADMIN)
    platform.services.ca.on_tick(platform.clock())  # the periodic renewal only logs it
    assert platform.services.status.health()["status"] in ("ok", "degraded")
