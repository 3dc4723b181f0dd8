"""The posture audit: every check with a device that has the weakness and one that does not; CSAF advisories
imported only with a matching .sha512, version ranges evaluated, ambiguous matches reported as ambiguous; and the
audit over a real platform through the API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from plantguard.security.csaf import AdvisoryIndex, in_range, load_dir, version_key
from plantguard.security.posture import CHECKS, DeviceFacts, audit

FIXTURES = Path(__file__).parent / "fixtures" / "csaf"
NOW = 1_800_000_000_000_000
DAY = 86400 * 1_000_000
OK_INV = {"vendor": "Acme Automation", "product": "PLC-5000", "firmware": "2.5.0", "owner": "maintenance", "criticality": "high"}


def facts(**kw) -> DeviceFacts:
    base = dict(path="s/a/l/x/dev", inventory=dict(OK_INV), links=[], writable_points=[], period_us=1_000_000,
                last_seen_us=NOW - 1_000_000, credentials=[], first_seen=None)
    base.update(kw)
    return DeviceFacts(**base)


MQTT = {"type": "mqtt", "name": "mqtt", "endpoint": "b:1883", "tls": False, "client_id": "pg"}
CRED = {"username": "s/a/l/x/dev@k1", "created_at": NOW - 10 * DAY, "expires_at": None, "revoked_at": None, "suspended": False}

# check id -> (facts with the weakness, facts without it)
CASES = {
    "protocol.modbus_plaintext": (facts(links=[{"type": "modbus", "name": "plc", "endpoint": "10.0.0.5:502"}]),
                                  facts(links=[{"type": "opcua", "name": "ua", "security_mode": "SignAndEncrypt", "server_certificate": "s.der"}])),
    "protocol.opcua_security_none": (facts(links=[{"type": "opcua", "name": "ua", "endpoint": "opc.tcp://x", "security_mode": "None"}]),
                                     facts(links=[{"type": "opcua", "name": "ua", "security_mode": "Sign", "server_certificate": "s.der"}])),
    "protocol.opcua_server_not_pinned": (facts(links=[{"type": "opcua", "name": "ua", "security_mode": "Sign", "server_certificate": None}]),
                                         facts(links=[{"type": "opcua", "name": "ua", "security_mode": "Sign", "server_certificate": "s.der"}])),
    "protocol.mqtt_without_tls": (facts(links=[MQTT], credentials=[CRED]), facts(links=[{**MQTT, "tls": True}], credentials=[CRED])),
    "protocol.writable_points": (facts(writable_points=["s/a/l/x/dev/setpoint"]), facts()),
    "credentials.no_device_credential": (facts(links=[MQTT]), facts(links=[MQTT], credentials=[CRED])),
    "credentials.never_rotated": (facts(credentials=[{**CRED, "created_at": NOW - 400 * DAY}]), facts(credentials=[CRED])),
    "credentials.expiring": (facts(credentials=[{**CRED, "expires_at": NOW + 3 * DAY}]), facts(credentials=[{**CRED, "expires_at": NOW + 60 * DAY}])),
    "credentials.weak_key": (facts(credentials=[{**CRED, "kind": "certificate", "key_type": "rsa", "key_bits": 1024}]),
                             facts(credentials=[{**CRED, "kind": "certificate", "key_type": "ec-secp256r1", "key_bits": 256}])),
    "credentials.revoked_still_in_use": (
        facts(credentials=[{**CRED, "revoked_at": NOW - DAY}], last_seen_us=NOW - 1_000_000),
        facts(credentials=[{**CRED, "revoked_at": NOW - DAY}], last_seen_us=NOW - DAY - 1_000_000)),
    "credentials.conflicting_client_id": (
        facts(links=[MQTT, {**MQTT, "name": "other", "type": "sparkplug"}], credentials=[CRED]), facts(links=[MQTT], credentials=[CRED])),
    "behaviour.silent": (facts(last_seen_us=NOW - 2 * 3600 * 1_000_000), facts()),
    "inventory.no_owner": (facts(inventory={**OK_INV, "owner": None}), facts()),
    "identity.changed": (facts(first_seen={"firmware": "2.4.9", "vendor": "Acme Automation"}),
                         facts(first_seen={"firmware": "2.5.0", "vendor": "Acme Automation"})),
}


def test_every_check_has_a_positive_and_a_negative_case():
    assert set(CASES) == {c.id for c in CHECKS}


@pytest.mark.parametrize("check", sorted(CASES))
def test_each_check_fires_on_the_weakness_and_not_without_it(check):
    bad, good = CASES[check]
    hit = [f for f in audit([bad], now=NOW).findings if f.check == check]
    assert hit and hit[0].evidence and hit[0].remediation and hit[0].device == bad.path
    assert not [f for f in audit([good], now=NOW).findings if f.check == check]


def test_muted_findings_are_left_out():
    bad, _ = CASES["protocol.modbus_plaintext"]
    assert not [f for f in audit([bad], now=NOW, mute={("protocol.modbus_plaintext", bad.path)}).findings
                if f.check == "protocol.modbus_plaintext"]


def test_advisories_need_their_sha512_and_ranges_are_evaluated(tmp_path):
    advs, problems = load_dir(FIXTURES)
    assert sorted(a.id for a in advs) == ["ICSA-26-001-01", "ICSA-26-002-02", "ICSA-26-003-03"]
    assert len(problems) == 1 and "tampered.json" in problems[0] and "SHA-512" in problems[0]
    shutil.copy(FIXTURES / "icsa-26-001-01.json", tmp_path / "x.json")  # no .sha512 next to it
    assert load_dir(tmp_path)[0] == [] and "no .sha512" in load_dir(tmp_path)[1][0]
    idx = AdvisoryIndex(advs)
    hits = {m.advisory.id: m for m in idx.match("acme automation", "PLC-5000", "V2.3.7")}
    assert hits["ICSA-26-001-01"].certain  # 2.3.7 in [2.0, 2.4.1)
    assert not hits["ICSA-26-003-03"].certain and "partly" in hits["ICSA-26-003-03"].why  # "PLC-5000 Series": ambiguous
    assert "ICSA-26-001-01" not in {m.advisory.id for m in idx.match("Acme Automation", "PLC-5000", "2.4.1")}
    none = idx.match("Acme Automation", "PLC-5000", None)  # no firmware known: ambiguous, not dropped
    assert none and all(not m.certain for m in none)
    assert [m.advisory.id for m in idx.match("Acme Automation", "HMI Panel", "1.2.0")] == ["ICSA-26-002-02"]
    assert idx.match("Acme Automation", "HMI Panel", "1.2.1") == []
    assert idx.match("Other Vendor", "PLC-5000", "2.3.0") == []


def test_an_advisory_finding_carries_the_cve_score_and_remediation():
    idx = AdvisoryIndex(load_dir(FIXTURES)[0])
    r = audit([facts(inventory={**OK_INV, "firmware": "2.1"})], now=NOW, advisories=idx)
    adv = [f for f in r.findings if f.check == "advisory.known_vulnerability"]
    certain = [f for f in adv if not f.ambiguous]
    assert certain[0].severity == "critical" and certain[0].evidence["cves"] == ["CVE-2026-0001"]
    assert "V2.4.1" in certain[0].remediation
    assert any(f.ambiguous and "ambiguous" in f.title for f in adv)


versions = st.lists(st.integers(0, 30), min_size=1, max_size=4)


@given(versions, versions, versions)
def test_ranges_agree_with_tuple_comparison(v, lo, hi):
    s = ".".join(map(str, v))
    got = in_range(s, f"vers:generic/>={'.'.join(map(str, lo))}|<{'.'.join(map(str, hi))}")
    pad = lambda t: tuple(t) + (0,) * (4 - len(t))  # noqa: E731
    assert got == (pad(lo) <= pad(v) < pad(hi))
    assert in_range(s, "vers:generic/*") is True
    assert in_range("unknown", ">=1.0") is None and version_key("V2.10.3") == (2, 10, 3)


def test_the_audit_over_a_platform_through_the_api(tmp_path):
    from fastapi.testclient import TestClient

    from plantguard.api.app import create_app
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.security.audit import read_entries
    from plantguard.testing.auth import auth_headers
    from plantguard.testing.factories import plant_dict

    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    devs = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"]
    devs[0]["inventory"] = {"vendor": "Acme Automation", "product": "PLC-5000", "firmware": "2.3.0", "owner": "ot", "criticality": "high"}
    devs.append({**devs[0], "id": "hmi", "protocol": "opcua", "inventory": None})
    d["connectors"] = [
        {"type": "modbus", "name": "plc", "transport": {"kind": "tcp", "host": "10.0.0.5", "port": 502},
         "devices": [{"device": "s1/a1/l1/pump1/plc1", "points": [{"id": "p0", "address": 0}]}]},
        {"type": "opcua", "name": "hmi", "endpoint": "opc.tcp://10.0.0.6:4840",
         "devices": [{"device": "s1/a1/l1/pump1/hmi", "nodes": [{"point": "p0", "node_id": "ns=2;s=x"}]}]}]
    d["security"] = {"advisories_dir": str(FIXTURES)}
    p = Platform(parse_config(d))
    try:
        app = create_app(p.services)
        with TestClient(app, base_url="http://127.0.0.1") as c:
            eng, adm, viewer = (auth_headers(p, r) for r in ("engineer", "admin", "viewer"))
            assert c.get("/api/security/findings", headers=viewer).status_code == 403
            r = c.get("/api/security/findings", headers=eng).json()
            got = {(f["check"], f["device"]) for f in r["findings"]}
            assert ("protocol.modbus_plaintext", "s1/a1/l1/pump1/plc1") in got
            assert ("protocol.opcua_security_none", "s1/a1/l1/pump1/hmi") in got
            assert ("inventory.no_owner", "s1/a1/l1/pump1/hmi") in got
            assert ("advisory.known_vulnerability", "s1/a1/l1/pump1/plc1") in got
            assert r["advisories"] == 3 and any("tampered" in x for x in r["advisory_problems"])
            assert c.post("/api/security/audit", json={}, headers=eng).status_code == 403  # running it on record: admins
            assert c.post("/api/security/audit", json={}, headers=adm).status_code == 200
            body = {"check": "protocol.modbus_plaintext", "device": "s1/a1/l1/pump1/plc1", "decision": "accept", "reason": ""}
            assert c.post("/api/security/triage", json=body, headers=adm).status_code == 400  # a reason is required
            body["reason"] = "isolated cell, firewall allows plantguard only"
            assert c.post("/api/security/triage", json=body, headers=adm).status_code == 204
            r = c.get("/api/security/findings", headers=eng).json()
            assert ("protocol.modbus_plaintext", "s1/a1/l1/pump1/plc1") not in {(f["check"], f["device"]) for f in r["findings"]}
            # the PLC is swapped: new firmware appears in the model after the identity was first seen
            doc = c.get("/api/model", headers=eng).json()
            doc["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["inventory"]["firmware"] = "2.6.0"
            assert c.put("/api/model", json={"sites": doc["sites"]}, headers=eng).status_code == 200
            r = c.get("/api/security/findings", headers=eng).json()
            changed = [f for f in r["findings"] if f["check"] == "identity.changed"]
            assert changed and changed[0]["evidence"]["changed"]["firmware"] == {"first_seen": "2.3.0", "now": "2.6.0"}
        actions = [e.action for e in read_entries(p.store)]
        assert "security.audit" in actions and "security.triage.accept" in actions
    finally:
        p.stop()
