"""The audit log: the Merkle tree matches RFC 9162's definition; editing, inserting, reordering, deleting and
truncating entries in the store are each detected and the first bad entry named; forged checkpoints and a
doctored witness are refused; the log survives restarts and a crash between the store and the witness."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, strategies as st
from typer.testing import CliRunner

from plantguard.security.audit import AuditLog, Frontier, leaf_hash, merkle_root, node_hash, read_entries, verify
from plantguard.store.embedded import EmbeddedStore


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, literally: split at the largest power of two smaller than n."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


@given(st.lists(st.binary(min_size=0, max_size=8), max_size=70))
def test_the_frontier_root_is_rfc_9162s_tree_head(items):
    leaves = [leaf_hash(x) for x in items]
    assert merkle_root(leaves) == mth(leaves)
    f = Frontier()
    for i, h in enumerate(leaves):  # and at every size on the way
        f.push(h)
        assert f.root() == mth(leaves[:i + 1])


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000_000_000

    def __call__(self) -> int:
        self.t += 1000
        return self.t


@pytest.fixture
def store(tmp_path):
    from plantguard import capabilities

    capabilities.registered()  # the security capability's migration
    s = EmbeddedStore(tmp_path / "data")
    s.migrate()
    yield s
    s.close()


def make_log(store, tmp_path) -> AuditLog:
    return AuditLog(store, tmp_path / "audit" / "signing.key", tmp_path / "audit" / "witness.jsonl", clock=Clock())


def check(store, tmp_path, log: AuditLog | None = None):
    with open(tmp_path / "audit" / "witness.jsonl", "rb") as f:
        return verify(read_entries(store), f, (log.public_key if log else None))


def filled(store, tmp_path, n: int = 20) -> AuditLog:
    log = make_log(store, tmp_path)
    for i in range(n):
        log.record(f"user:u{i % 3}", "alarm.ack", f"s/a/l/x/d/p{i}:HI", detail={"note": f"n{i}"})
        if i == 11:
            log.checkpoint()
    log.checkpoint()
    return log


def test_an_untouched_log_verifies(store, tmp_path):
    log = filled(store, tmp_path)
    v = check(store, tmp_path, log)
    assert v.ok and v.entries == 20 and v.covered == 20 and v.checkpoints == 2, v


def _rows(store):
    return store.fetch("SELECT seq, ts, actor, action, target, result, detail FROM audit_log ORDER BY seq")


def _put(store, rows):
    store.execute([("DELETE FROM audit_log", ())] + [
        ("INSERT INTO audit_log (seq, ts, actor, action, target, result, detail) VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(r)) for r in rows])


def tamper_edit(store):
    store.execute([("UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 7", ())])
    return 7


def tamper_edit_detail(store):
    store.execute([("UPDATE audit_log SET detail = '{\"note\": \"nothing happened\"}' WHERE seq = 13", ())])
    return 13


def tamper_insert(store):
    rows = [list(r) for r in _rows(store)]
    forged = [5, rows[5][1] - 1, "user:u0", "alarm.ack", "s/a/l/x/d/forged:HI", "ok", "{}"]
    rows = rows[:5] + [forged] + [[r[0] + 1, *r[1:]] for r in rows[5:]]
    _put(store, rows)
    return 5


def tamper_delete(store):
    store.execute([("DELETE FROM audit_log WHERE seq = 9", ())])
    return 9


def tamper_delete_and_renumber(store):
    rows = [list(r) for r in _rows(store) if r[0] != 9]
    _put(store, [[i, *r[1:]] for i, r in enumerate(rows)])
    return 9


def tamper_reorder(store):
    rows = [list(r) for r in _rows(store)]
    rows[3][1:], rows[4][1:] = rows[4][1:], rows[3][1:]
    _put(store, rows)
    return 3


def tamper_truncate(store):
    store.execute([("DELETE FROM audit_log WHERE seq >= 15", ())])
    return 15


def tamper_append(store):
    r = list(_rows(store)[-1])
    store.execute([("INSERT INTO audit_log (seq, ts, actor, action, target, result, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (20, r[1] + 1, "user:mallory", "user.create", "backdoor", "ok", "{}"))])
    return 20


@pytest.mark.parametrize("tamper", [tamper_edit, tamper_edit_detail, tamper_insert, tamper_delete, tamper_delete_and_renumber,
                                    tamper_reorder, tamper_truncate, tamper_append], ids=lambda f: f.__name__[7:])
def test_tampering_with_the_stored_log_is_detected_and_the_entry_named(store, tmp_path, tamper):
    log = filled(store, tmp_path)
    first = tamper(store)
    v = check(store, tmp_path, log)
    assert not v.ok and v.first_bad == first, v
    assert str(first) in v.problem


def test_a_forged_checkpoint_or_a_doctored_witness_is_refused(store, tmp_path):
    log = filled(store, tmp_path)
    path = tmp_path / "audit" / "witness.jsonl"
    lines = path.read_bytes().splitlines()
    cp = json.loads(lines[-1])
    forged = dict(cp, root="00" * 32)
    bad_sig = b"\n".join(lines[:-1] + [json.dumps(forged).encode()])
    assert "bad signature" in verify(read_entries(store), bad_sig.splitlines(), log.public_key).problem
    doctored = [json.dumps({"leaf": 4, "hash": "11" * 32}).encode() if json.loads(x).get("leaf") == 4 else x for x in lines]
    v = verify(read_entries(store), doctored, log.public_key)
    assert not v.ok and "root signed" in v.problem
    other_key = dict(cp, key="22" * 32)
    v = verify(read_entries(store), lines[:-1] + [json.dumps(other_key).encode()], log.public_key)
    assert not v.ok and "another key" in v.problem


def test_the_log_continues_across_restarts_and_a_lost_witness_line_is_marked_late(store, tmp_path):
    log = filled(store, tmp_path, 5)
    log.close()
    log = make_log(store, tmp_path)
    assert log.size == 5
    log.record("user:u1", "login", "u1")
    # a crash between the store's insert and the witness line: the row is stored, the witness never saw it
    e = read_entries(store)[-1]
    store.execute([("INSERT INTO audit_log (seq, ts, actor, action, target, result, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (6, e.at + 1, "user:u2", "login", "u2", "ok", "{}"))])
    log._witness.close()  # noqa: SLF001 - the process dies here
    log = make_log(store, tmp_path)
    assert log.size == 7
    log.close()
    v = check(store, tmp_path, log)
    assert v.ok and any("late" in n for n in v.notes), v


def test_the_cli_verifies_offline_and_names_the_first_bad_entry(tmp_path):
    from plantguard.cli.main import app

    data = tmp_path / "data"
    data.mkdir()
    s = EmbeddedStore(data)
    from plantguard import capabilities

    capabilities.registered()
    s.migrate()
    log = AuditLog(s, data / "audit" / "signing.key", data / "audit" / "witness.jsonl", clock=Clock())
    for i in range(6):
        log.record("user:ann", "model.replace", f"version {i + 1}")
    log.close()
    s.close()
    r = CliRunner().invoke(app, ["audit", "verify", "--data-dir", str(data)])
    assert r.exit_code == 0 and "intact: 6 entries" in r.output, r.output
    s = EmbeddedStore(data)
    s.execute([("UPDATE audit_log SET target = 'version 9' WHERE seq = 2", ())])
    s.close()
    r = CliRunner().invoke(app, ["audit", "verify", "--data-dir", str(data)])
    assert r.exit_code == 1 and "TAMPERED" in r.output and "first bad entry: 2" in r.output, r.output


def _syslog_file(store, tmp_path, proto: str):
    """A log with checkpoints every 5 entries sent to a syslog receiver on loopback; what it received is written as
    a syslog server's file would hold it, between other programs' messages."""
    import socket
    import threading

    from plantguard.security.audit import SyslogExporter

    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    srv = socket.socket(socket.AF_INET, kind)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(10)
    got: list[bytes] = []
    if proto == "tcp":
        srv.listen(1)

        def serve():
            conn, _ = srv.accept()
            conn.settimeout(10)
            buf = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
            got.extend(x for x in buf.split(b"\n") if x)
            conn.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
    x = SyslogExporter(f"{proto}://127.0.0.1:{srv.getsockname()[1]}", "local3")
    log = AuditLog(store, tmp_path / "audit" / "signing.key", tmp_path / "audit" / "witness.jsonl", clock=Clock(), exporters=[x])
    for i in range(20):
        log.record(f"user:u{i % 3}", "alarm.ack", f"s/a/l/x/d/p{i}:HI", detail={"note": f"n{i}"})
        if i % 5 == 4:
            log.checkpoint()
    x.close()
    if proto == "udp":
        for _ in range(4):
            got.append(srv.recvfrom(65536)[0])
    else:
        t.join(10)
    srv.close()
    assert len(got) == 4 and x.sent == 4
    assert all(g.startswith(b"<157>1 ") and b" plantguard-audit " in g for g in got), got  # local3.notice, RFC 5424
    f = tmp_path / "syslog"
    f.write_bytes(b"Dec  1 17:00:00 host sshd[1]: Accepted publickey for root\n" + b"\n".join(got) + b"\nDec  1 17:00:01 host cron[2]: ok\n")
    return log, f


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_checkpoints_sent_to_syslog_verify_the_log_on_their_own(store, tmp_path, proto):
    log, f = _syslog_file(store, tmp_path, proto)
    with open(f, "rb") as fh:
        v = verify(read_entries(store), fh, log.public_key)
    assert v.ok and v.covered == 20 and v.checkpoints == 4, v


@pytest.mark.parametrize("tamper", [tamper_edit, tamper_edit_detail, tamper_insert, tamper_delete_and_renumber, tamper_reorder,
                                    tamper_truncate], ids=lambda f: f.__name__[7:])
def test_syslog_checkpoints_alone_detect_tampering_and_locate_it(store, tmp_path, tamper):
    log, f = _syslog_file(store, tmp_path, "udp")
    first = tamper(store)
    with open(f, "rb") as fh:
        v = verify(read_entries(store), fh, log.public_key)
    assert not v.ok, v
    # located to the five entries between two checkpoints (the witness file names the very entry)
    assert v.first_bad is not None and v.first_bad <= first < v.first_bad + 5, v
