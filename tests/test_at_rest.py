"""Secrets and state at rest: an owner-only data directory whatever the umask, second-factor secrets sealed with a
key outside the store, connector passwords kept out of the stored model, and every place where outside data
becomes objects, paths or requests reviewed (YAML, CSAF, CSV, export, webhooks, the dashboard's CSP)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
import yaml
from fastapi.testclient import TestClient

from plantguard.config import parse_config
from plantguard.domain.actor import Actor
from plantguard.errors import ConfigError, InvalidInput, Unauthenticated
from plantguard.runtime import Platform
from plantguard.testing.auth import PASSWORD, auth_headers
from plantguard.testing.factories import plant_dict

SCRIPT = r"""
import os, sys
os.umask(int(sys.argv[2], 8))
from plantguard.config import parse_config
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict
p = Platform(parse_config(plant_dict(2, data_dir=sys.argv[1]))).start()
p.services.ca.ca_pem()  # the certificate authority made on first use
p.stop()
"""


def _others_can(root: Path) -> list[str]:
    bad = []
    for p in [root, *root.rglob("*")]:
        m = stat.S_IMODE(p.lstat().st_mode)
        if m & 0o077 or (p.is_dir() and m != 0o700):
            bad.append(f"{p.relative_to(root)} {m:o}")
    return bad


@pytest.mark.parametrize("umask", ["022", "000"])
def test_data_directory_is_owner_only_whatever_the_umask(tmp_path, umask):
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-c", SCRIPT, str(data), umask], check=True, timeout=240)
    names = {p.name for p in data.rglob("*")}
    assert {"plantguard.duckdb", "signing.key", "witness.jsonl", "secrets.key", "state.key", "ca.key"} <= names, names
    assert _others_can(data) == []


@pytest.mark.parametrize("umask", ["022", "000"])
def test_gateway_queue_is_owner_only_whatever_the_umask(tmp_path, umask):
    q = tmp_path / "queue"
    code = ("import os, sys; os.umask(int(sys.argv[2], 8))\n"
            "from plantguard.connectors.gateway.queue import GatewayQueue\n"
            "from plantguard.domain.readings import RawBatch\n"
            "d = GatewayQueue(sys.argv[1], min_free_bytes=0); d.append(RawBatch.build(['a/b'], [1], [1.0])); d.close()")
    subprocess.run([sys.executable, "-c", code, str(q), umask], check=True, timeout=120)
    assert list(q.iterdir()) and _others_can(q) == []


def test_a_readable_data_directory_is_fixed_at_start_and_flagged_by_the_audit(tmp_path, caplog):
    data = tmp_path / "data"
    cfg = parse_config(plant_dict(2, data_dir=str(data)))
    Platform(cfg).stop()
    os.chmod(data, 0o755)
    os.chmod(data / "plantguard.duckdb", 0o644)
    p = Platform(cfg)
    try:
        assert _others_can(data) == []
        assert any("readable by other users" in r.getMessage() for r in caplog.records)
        os.chmod(data, 0o755)  # someone opens it up while the platform runs
        os.chmod(data / "keys" / "secrets.key", 0o644)
        report = p.services.posture.run()
        f = [x for x in report.findings if x.check == "platform.data_dir_exposed"]
        assert f and f[0].severity == "high" and f[0].evidence["exposed"] == 2
        p.services.risks.record(report)  # a host finding is no device's risk, and does not break the register
        os.chmod(data, 0o700)
        os.chmod(data / "keys" / "secrets.key", 0o600)
        assert not [x for x in p.services.posture.run().findings if x.check == "platform.data_dir_exposed"]
    finally:
        p.stop()


# -- second-factor secrets ---------------------------------------------------------------------------------------
def _mfa_user(p: Platform) -> str:
    acc = p.services.accounts
    acc.create_user("eve-admin", "admin", PASSWORD, Actor.system("tests"))
    uri = acc.start_totp("eve-admin", Actor.system("tests"))
    secret = pyotp.parse_uri(uri).secret
    acc.confirm_totp("eve-admin", pyotp.TOTP(secret).now(), Actor.system("tests"))
    return secret


def _stored_secret(p: Platform) -> str:
    return p.store.fetch("SELECT totp_secret FROM users WHERE name = 'eve-admin'")[0][0]


def test_totp_secret_is_sealed_and_a_store_copied_without_its_key_gives_nothing(tmp_path):
    data = tmp_path / "data"
    p = Platform(parse_config(plant_dict(2, data_dir=str(data))))
    try:
        secret = _mfa_user(p)
        stored = _stored_secret(p)
        assert stored.startswith("pgsec1:") and secret not in stored
        p.services.accounts.login("eve-admin", PASSWORD, totp=pyotp.TOTP(secret).now())
    finally:
        p.stop()
    assert secret.encode() not in (data / "plantguard.duckdb").read_bytes()
    # the store file copied to another host, without the key files
    stolen = tmp_path / "stolen"
    stolen.mkdir()
    shutil.copy(data / "plantguard.duckdb", stolen / "plantguard.duckdb")
    q = Platform(parse_config(plant_dict(2, data_dir=str(stolen))))
    try:
        with pytest.raises(Unauthenticated):
            q.services.accounts.login("eve-admin", PASSWORD, totp=pyotp.TOTP(secret).now())
    finally:
        q.stop()


def test_a_sealed_secret_moved_to_another_user_does_not_open(tmp_path):
    p = Platform(parse_config(plant_dict(2, data_dir=str(tmp_path / "data"))))
    try:
        secret = _mfa_user(p)
        acc = p.services.accounts
        acc.create_user("mallory", "admin", PASSWORD, Actor.system("tests"))
        p.store.execute([("UPDATE users SET totp_secret = ? WHERE name = 'mallory'", (_stored_secret(p),))])
        with pytest.raises(Unauthenticated):
            acc.login("mallory", PASSWORD, totp=pyotp.TOTP(secret).now())
    finally:
        p.stop()


def test_secrets_kept_in_clear_by_an_older_version_are_sealed_at_start(tmp_path):
    cfg = parse_config(plant_dict(2, data_dir=str(tmp_path / "data")))
    p = Platform(cfg)
    try:
        secret = _mfa_user(p)
        p.store.execute([("UPDATE users SET totp_secret = ? WHERE name = 'eve-admin'", (secret,))])  # as before
    finally:
        p.stop()
    p = Platform(cfg)
    try:
        assert _stored_secret(p).startswith("pgsec1:")
        p.services.accounts.login("eve-admin", PASSWORD, totp=pyotp.TOTP(secret).now())
    finally:
        p.stop()


def test_key_rotation_reseals_and_retires(tmp_path):
    from typer.testing import CliRunner

    from plantguard.cli.main import app

    data = tmp_path / "data"
    cfg = parse_config(plant_dict(2, data_dir=str(data)))
    p = Platform(cfg)
    try:
        secret = _mfa_user(p)
        old_kid = _stored_secret(p).split(":")[1]
    finally:
        p.stop()
    run = CliRunner().invoke
    r = run(app, ["keys", "rotate", "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    ring = (data / "keys" / "secrets.key").read_text().split("\n")
    assert len([x for x in ring if x]) == 2 and old_kid in ring[1]
    r = run(app, ["keys", "retire", "--data-dir", str(data)])
    assert r.exit_code == 0 and "retired 1 key(s)" in r.output, r.output
    p = Platform(cfg)
    try:
        assert _stored_secret(p).split(":")[1] != old_kid
        p.services.accounts.login("eve-admin", PASSWORD, totp=pyotp.TOTP(secret).now())
    finally:
        p.stop()


def test_the_stored_model_holds_no_connector_password(tmp_path):
    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    d["connectors"] = [{"type": "mqtt", "name": "m", "enabled": False, "host": "127.0.0.1", "username": "u",
                        "password": "a-real-broker-password"}]
    p = Platform(parse_config(d))
    try:
        doc = p.store.load_model()[1]
        assert "a-real-broker-password" not in doc and "kept in the configuration file" in doc
        assert p.cfg.connectors[0]["password"] == "a-real-broker-password"  # the running configuration keeps it
    finally:
        p.stop()
    assert b"a-real-broker-password" not in (tmp_path / "data" / "plantguard.duckdb").read_bytes()


# -- where outside data becomes objects, paths or requests ---------------------------------------------------------
def test_yaml_tags_that_build_objects_are_refused(tmp_path):
    from plantguard.config import load_config

    marker = tmp_path / "ran"
    f = tmp_path / "plant.yaml"
    f.write_text(f"sites: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError):
        load_config(f)
    assert not marker.exists()
    with pytest.raises(Exception):
        yaml.safe_load(f.read_text())  # the loader the platform uses
    p = Platform(parse_config(plant_dict(2, data_dir=str(tmp_path / "data"))))
    try:
        from plantguard.api.app import create_app

        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=auth_headers(p)) as c:
            r = c.put("/api/model", content=f.read_bytes(), headers={"content-type": "application/yaml"})
            assert 400 <= r.status_code < 500, r.text
    finally:
        p.stop()
    assert not marker.exists()


def test_csaf_files_nested_too_deeply_or_linked_from_outside_are_refused(tmp_path):
    import hashlib

    from plantguard.security.csaf import load_dir

    d = tmp_path / "advisories"
    d.mkdir()
    deep = b"[" * 200_000 + b"]" * 200_000  # under the size limit, deeper than Python's stack
    (d / "deep.json").write_bytes(deep)
    (d / "deep.json.sha512").write_text(hashlib.sha512(deep).hexdigest())
    outside = tmp_path / "secret.json"
    outside.write_text('{"document": {}}')
    (d / "link.json").symlink_to(outside)
    (d / "link.json.sha512").write_text(hashlib.sha512(outside.read_bytes()).hexdigest())
    advisories, problems = load_dir(d)
    assert advisories == []
    assert any("deep.json" in x and "nested too deeply" in x for x in problems)
    assert any("link.json" in x and "link out" in x for x in problems)


def test_csv_import_refuses_a_fifo_instead_of_hanging(tmp_path):
    from plantguard.connectors.csv.importer import read_csv

    fifo = tmp_path / "export.csv"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput, match="not a regular file"):
        next(read_csv(fifo))


def test_export_does_not_follow_a_link_planted_at_its_temporary_name(tmp_path):
    from typer.testing import CliRunner

    from plantguard.cli.main import app

    data = tmp_path / "data"
    p = Platform(parse_config(plant_dict(2, data_dir=str(data))))
    tag = next(r.tag for r in p.index.points())
    p.stop()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "shared" / "export.csv"
    out.parent.mkdir()
    (out.parent / "export.csv.partial").symlink_to(victim)  # the name the export used to write through
    r = CliRunner().invoke(app, ["export", tag, "--out", str(out), "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    assert victim.read_text() == "precious\n" and out.read_text().startswith("timestamp,point")
    assert stat.S_IMODE(out.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:2019/config",
                                 "http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x", "http://localhost/x",
                                 "http://metadata.google.internal/computeMetadata/v1/", "file:///etc/passwd",
                                 "http://user:pw@example.com/x", "http://[fe80::1]/x"])
def test_webhooks_to_this_host_link_local_or_metadata_are_refused(tmp_path, url):
    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    d["alarms"] = {"webhooks": [{"url": url}]}
    with pytest.raises(ConfigError, match="webhooks"):
        parse_config(d)


def test_webhook_networks_can_be_allowed_and_names_are_checked_when_sending(monkeypatch):
    import socket

    from plantguard.domain.addresses import check_url

    assert check_url("http://127.0.0.1:9/x", ["127.0.0.1/32"], resolve=False) is None
    assert check_url("http://10.1.2.3/hook", resolve=False) is None  # the plant's own systems stay reachable
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                                                         ("169.254.169.254", port))])
    assert "metadata" in check_url("https://hooks.example.com/x")  # a name pointing at the metadata service


def test_every_answer_carries_a_content_security_policy_and_docs_run_no_inline_script(tmp_path):
    from plantguard.api.app import create_app

    p = Platform(parse_config(plant_dict(2, data_dir=str(tmp_path / "data")))).start()
    try:
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=auth_headers(p)) as c:
            for path in ("/", "/docs", "/api/health", "/login", "/static/js/live.js", "/nowhere"):
                r = c.get(path)
                csp = r.headers.get("content-security-policy", "")
                assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
                assert "unsafe-inline" not in csp and r.headers["x-content-type-options"] == "nosniff"
            page = c.get("/docs").text
            import re

            inline = [s for s in re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S) if "src=" not in s[0] and s[1].strip()]
            assert inline == []
            assert c.get("/static/js/swagger-init.js").status_code == 200
    finally:
        p.stop()
