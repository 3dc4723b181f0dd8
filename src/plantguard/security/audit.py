"""The tamper-evident audit log.

Each entry records who (actor), what (action), on what (target), with what result, and when: the fields of
IEC 62443-3-3 SR 2.8. Entries are the leaves of a Merkle tree built as RFC 9162 section 2.1 does:

    leaf hash   = SHA-256(0x00 || entry bytes)            entry bytes: canonical JSON of the entry
    node hash   = SHA-256(0x01 || left || right)
    MTH(n)      = the root over the first n leaves (split at the largest power of two below n)

Outside the store, a witness file receives every leaf hash as it is recorded and, on a schedule and at shutdown,
a checkpoint: the tree size, its root and the time, signed with Ed25519. Whoever can edit the store but not the
witness (put it on another disk, an append-only mount, or ship it to syslog) cannot edit, insert, reorder, delete
or truncate entries unnoticed: `verify` recomputes every leaf from the store, checks each checkpoint's signature
and root against the witness's leaves, and names the first entry that differs.

Memory is O(log n): the root is kept as the roots of the perfect subtrees so far (the "frontier").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from plantguard.fsperm import private_dir
from plantguard.domain.actor import Actor

MAX_FIELD = 512
MAX_DETAIL = 8192

log = logging.getLogger(__name__)
SYSLOG_TAG = "plantguard-audit"


def leaf_hash(entry_bytes: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry_bytes).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """MTH over leaf hashes (RFC 9162 2.1.1); the hash of the empty string for no leaves."""
    f = Frontier()
    for h in leaves:
        f.push(h)
    return f.root()


class Frontier:
    """The roots of the perfect subtrees covering the leaves so far, largest first: push is amortised O(1), the
    root O(log n)."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (subtree size, hash)

    def push(self, h: bytes) -> None:
        self.size += 1
        self._stack.append((1, h))
        while len(self._stack) >= 2 and self._stack[-1][0] == self._stack[-2][0]:
            (n, right), (_, left) = self._stack.pop(), self._stack.pop()
            self._stack.append((2 * n, node_hash(left, right)))

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: int  # epoch microseconds
    actor: str
    action: str  # e.g. login, login_failed, model.replace, alarm.ack, token.create, quarantine
    target: str = ""
    result: str = "ok"  # ok, denied, failed
    detail: dict = field(default_factory=dict)

    def canonical(self) -> bytes:
        return orjson.dumps({"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action,
                             "target": self.target, "result": self.result, "detail": self.detail},
                            option=orjson.OPT_SORT_KEYS)

    def as_dict(self) -> dict:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action, "target": self.target,
                "result": self.result, "detail": self.detail}


def checkpoint_message(size: int, root_hex: str, at: int) -> bytes:
    return f"plantguard audit checkpoint v1\n{size}\n{root_hex}\n{at}\n".encode()


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key (PEM, readable by its owner only), created on first use; its public half next to it."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    private_dir(path.parent)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    path.with_suffix(".pub").write_text(public_hex(key.public_key()) + "\n")
    return key


def public_hex(pub: Ed25519PublicKey) -> str:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _clip(text: str, n: int = MAX_FIELD) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n - 3] + "..."


class AuditLog:
    """Appends entries to the store's `audit_log` table and their leaf hashes to the witness file; writes signed
    checkpoints. Thread-safe: one lock orders sequence numbers, the store insert and the witness line."""

    def __init__(self, store, key_path: Path, witness_path: Path, *, clock, exporters: list | None = None) -> None:
        self.store = store
        self.clock = clock
        self.exporters = list(exporters or [])  # each gets every signed checkpoint (syslog: SyslogExporter)
        self.witness_path = witness_path
        self._key = load_or_create_key(key_path)
        self.public_key = public_hex(self._key.public_key())
        self._lock = threading.Lock()
        self._frontier = Frontier()
        self._checkpointed = 0
        self.entries_recorded = 0
        self.errors = 0
        for e in self._entries_from_store():  # the frontier covers what is stored (O(log n) memory)
            self._frontier.push(leaf_hash(e.canonical()))
        private_dir(witness_path.parent)
        known = _witness_leaves(witness_path)
        self._witness = os.fdopen(os.open(witness_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        if self._frontier.size > known:
            # Entries the witness has not seen: a crash between the store's insert and the witness line, or a new
            # witness for an existing log. They are added marked late, so that an auditor sees where it happened.
            for e in self._entries_from_store()[known:]:
                self._write_witness({"leaf": e.seq, "hash": leaf_hash(e.canonical()).hex(), "late": True})
            self.checkpoint()

    def _entries_from_store(self) -> Iterable[AuditEntry]:
        return read_entries(self.store)

    def _write_witness(self, obj: dict) -> None:
        self._witness.write(orjson.dumps(obj) + b"\n")

    def record(self, actor: Actor | str, action: str, target: str = "", result: str = "ok", detail: dict | None = None) -> AuditEntry:
        detail = detail or {}
        text = orjson.dumps(detail, default=str)
        if len(text) > MAX_DETAIL:
            detail = {"truncated": text[:MAX_DETAIL].decode("utf-8", "replace")}
        with self._lock:
            e = AuditEntry(self._frontier.size, self.clock(), _clip(actor), _clip(action, 64), _clip(target),
                           _clip(result, 32), orjson.loads(orjson.dumps(detail, default=str)))
            self.store.execute([("INSERT INTO audit_log (seq, ts, actor, action, target, result, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (e.seq, e.at, e.actor, e.action, e.target, e.result, orjson.dumps(e.detail).decode()))])
            h = leaf_hash(e.canonical())
            self._frontier.push(h)
            self._write_witness({"leaf": e.seq, "hash": h.hex()})
            self._witness.flush()
            self.entries_recorded += 1
            return e

    def checkpoint(self) -> dict | None:
        """Signs the tree as it is now (if it grew) and appends the checkpoint to the witness, synced to disk."""
        with self._lock:
            size = self._frontier.size
            if size == self._checkpointed and size:
                return None
            root = self._frontier.root().hex()
            at = self.clock()
            sig = self._key.sign(checkpoint_message(size, root, at)).hex()
            cp = {"checkpoint": size, "root": root, "at": at, "key": self.public_key, "sig": sig}
            self._write_witness(cp)
            self._witness.flush()
            os.fsync(self._witness.fileno())
            self._checkpointed = size
        for x in self.exporters:  # outside the lock: a slow log server must not hold up recording
            try:
                x.export(cp)
            except Exception:  # noqa: BLE001 - the witness has it; the next checkpoint is sent again
                self.errors += 1
                log.exception("exporting the audit checkpoint failed")
        return cp

    def entries(self, since: int = 0, limit: int | None = None) -> list[AuditEntry]:
        return read_entries(self.store, since, limit)

    def verify_now(self) -> "Verification":
        """Signs the current tree, then checks the stored entries against the witness."""
        self.checkpoint()
        with open(self.witness_path, "rb") as f:
            return verify(read_entries(self.store), f, self.public_key)

    @property
    def size(self) -> int:
        return self._frontier.size

    def close(self) -> None:
        try:
            self.checkpoint()
        finally:
            self._witness.close()


def _witness_leaves(path: Path) -> int:
    if not path.exists():
        return 0
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b'{"leaf"'):
                n += 1
    return n


def read_entries(store, since: int = 0, limit: int | None = None) -> list[AuditEntry]:
    sql = "SELECT seq, ts, actor, action, target, result, detail FROM audit_log WHERE seq >= ? ORDER BY seq"
    params: tuple = (since,)
    if limit is not None:
        sql += " LIMIT ?"
        params += (int(limit),)
    out = []
    for seq, at, actor, action, target, result, detail in store.fetch(sql, params):
        try:
            d = json.loads(detail) if detail else {}
        except ValueError:
            d = {"unreadable": detail}  # an edited row still verifies (and fails) instead of stopping the check
        out.append(AuditEntry(int(seq), int(at), actor, action, target or "", result, d))
    return out


# -- verification (offline) -------------------------------------------------------------------------------------
@dataclass
class Verification:
    ok: bool
    entries: int
    covered: int  # entries under the last valid checkpoint
    checkpoints: int
    first_bad: int | None = None  # the sequence number of the first entry that is not what was recorded
    problem: str = ""
    notes: list[str] = field(default_factory=list)


def verify(entries: list[AuditEntry], witness_lines: Iterable[bytes], public_key_hex: str | None = None) -> Verification:
    """Checks the stored entries against the witness. `public_key_hex` pins the signing key (otherwise the key
    named in the first checkpoint is trusted, and every later checkpoint must use it)."""
    leaves: list[str] = []
    late: list[int] = []
    cps: list[dict] = []
    for n, line in enumerate(witness_lines, 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith(b"{"):
            # a syslog file: the checkpoints are the lines tagged plantguard-audit; other messages are not ours
            if SYSLOG_TAG.encode() not in line or b"{" not in line:
                continue
            line = line[line.index(b"{"):].rstrip(b"\x00")
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return Verification(False, len(entries), 0, len(cps), None, f"witness line {n} is not JSON")
        if "leaf" in obj:
            if obj["leaf"] != len(leaves):
                return Verification(False, len(entries), 0, len(cps), obj.get("leaf"), f"witness line {n}: leaf {obj['leaf']} out of order")
            leaves.append(obj["hash"])
            if obj.get("late"):
                late.append(obj["leaf"])
        elif "checkpoint" in obj:
            cps.append(obj)
    key_hex = public_key_hex or (cps[0]["key"] if cps else None)
    if not leaves and cps:
        return _verify_checkpoints_only(entries, cps, key_hex)
    covered = 0
    f = Frontier()
    done = 0
    for cp in cps:
        size = int(cp["checkpoint"])
        bad = _checkpoint_problem(cp, key_hex)
        if bad:
            return Verification(False, len(entries), covered, len(cps), None, bad)
        if size > len(leaves) or size < done:
            return Verification(False, len(entries), covered, len(cps), None, f"checkpoint at size {size} does not match the witness's {len(leaves)} leaves")
        for h in leaves[done:size]:
            f.push(bytes.fromhex(h))
        done = size
        if f.root().hex() != cp["root"]:
            return Verification(False, len(entries), covered, len(cps), None, f"the witness's leaves do not give the root signed at size {size}")
        covered = size
    # the store against the witness, entry by entry: the first difference is named
    for i, e in enumerate(entries):
        if e.seq != i:
            return Verification(False, len(entries), covered, len(cps), i,
                                f"entry {i} is missing (the store has {e.seq} next): deleted, or the log renumbered")
        if i < len(leaves) and leaf_hash(e.canonical()).hex() != leaves[i]:
            return Verification(False, len(entries), covered, len(cps), i,
                                f"entry {i} is not the one recorded: edited, inserted or moved")
    if len(entries) < len(leaves):
        return Verification(False, len(entries), covered, len(cps), len(entries),
                            f"entries {len(entries)}..{len(leaves) - 1} are missing: the log was cut off after entry {len(entries) - 1} (truncated)")
    if len(entries) > len(leaves):
        return Verification(False, len(entries), covered, len(cps), len(leaves),
                            f"entry {len(leaves)} and later were never given to the witness: inserted at the end")
    v = Verification(True, len(entries), covered, len(cps))
    if not cps:
        v.notes.append("no checkpoint in the witness: the leaves are compared, but nothing is signed")
    if len(entries) > covered:
        v.notes.append(f"entries {covered}..{len(entries) - 1} are after the last checkpoint (in the witness, not yet signed)")
    if late:
        v.notes.append(f"{len(late)} entr{'y' if len(late) == 1 else 'ies'} reached the witness late, at a start "
                       f"(entries {late[0]}..{late[-1]}): a crash between the store and the witness, or entries added while stopped")
    return v


def _checkpoint_problem(cp: dict, key_hex: str | None) -> str | None:
    """Why a checkpoint is not to be trusted (another key, a bad signature), or None."""
    size = cp.get("checkpoint")
    if cp.get("key") != key_hex:
        return f"checkpoint at size {size} is signed by another key"
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)).verify(
            bytes.fromhex(cp["sig"]), checkpoint_message(int(size), cp["root"], int(cp["at"])))
    except (InvalidSignature, ValueError, TypeError, KeyError):
        return f"checkpoint at size {size}: bad signature"
    return None


def _verify_checkpoints_only(entries: list[AuditEntry], cps: list[dict], key_hex: str) -> Verification:
    """Signed checkpoints without the leaves (what syslog received): each root is recomputed from the stored
    entries. A change is pinned down to the span between the last checkpoint that holds and the first that fails."""
    f = Frontier()
    good = 0
    for i, e in enumerate(entries):
        if e.seq != i:
            return Verification(False, len(entries), good, len(cps), i, f"entry {i} is missing (the store has {e.seq} next)")
    for cp in sorted(cps, key=lambda c: int(c["checkpoint"])):
        size = int(cp["checkpoint"])
        bad = _checkpoint_problem(cp, key_hex)
        if bad:
            return Verification(False, len(entries), good, len(cps), None, bad)
        if size > len(entries):
            return Verification(False, len(entries), good, len(cps), len(entries),
                                f"a checkpoint covers {size} entries, the store has {len(entries)}: truncated after entry {len(entries) - 1}")
        for e in entries[f.size:size]:
            f.push(leaf_hash(e.canonical()))
        if f.root().hex() != cp["root"]:
            return Verification(False, len(entries), good, len(cps), good,
                                f"entries {good}..{size - 1} do not give the root signed at size {size}: one of them was edited, "
                                "inserted, moved or deleted (the witness file names which)")
        good = size
    v = Verification(True, len(entries), good, len(cps))
    v.notes.append("checked against signed checkpoints only (no leaves): a change is located between two checkpoints")
    if len(entries) > good:
        v.notes.append(f"entries {good}..{len(entries) - 1} are after the last checkpoint given")
    return v


class SyslogExporter:
    """Sends every signed checkpoint to a syslog server as an RFC 5424 message (UDP, TCP with newline framing,
    or the local /dev/log), so that a copy lives on a machine the platform's own administrators cannot edit.
    `plantguard audit verify --checkpoint <the server's log file>` reads such a file as it is.

    `target`: udp://host:514, tcp://host:601 or unix:///dev/log."""

    FACILITIES = {"auth": 4, "authpriv": 10, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
                  "local5": 21, "local6": 22, "local7": 23}

    def __init__(self, target: str, facility: str = "authpriv", *, timeout: float = 2.0) -> None:
        import socket
        from urllib.parse import urlsplit

        u = urlsplit(target)
        if u.scheme == "unix" and u.path:
            self._family, self._address, self._type = socket.AF_UNIX, u.path, socket.SOCK_DGRAM
        elif u.scheme in ("udp", "tcp") and u.hostname:
            self._family = socket.AF_INET6 if ":" in u.hostname else socket.AF_INET
            self._address = (u.hostname, u.port or (514 if u.scheme == "udp" else 601))
            self._type = socket.SOCK_DGRAM if u.scheme == "udp" else socket.SOCK_STREAM
        else:
            raise ValueError(f"a syslog target is udp://host:port, tcp://host:port or unix:///path, not {target!r}")
        if facility not in self.FACILITIES:
            raise ValueError(f"facility is one of {', '.join(self.FACILITIES)}")
        self.target = target
        self._pri = self.FACILITIES[facility] * 8 + 5  # severity notice
        self._timeout = timeout
        self._sock = None
        self.sent = 0

    def message(self, cp: dict) -> bytes:
        import datetime as dt
        import socket

        stamp = dt.datetime.fromtimestamp(int(cp["at"]) / 1e6, dt.timezone.utc).isoformat().replace("+00:00", "Z")
        host = (socket.gethostname() or "-")[:255].replace(" ", "_")
        body = json.dumps(cp, sort_keys=True, separators=(",", ":"))
        return f"<{self._pri}>1 {stamp} {host} {SYSLOG_TAG} {os.getpid()} checkpoint - {body}".encode()

    def export(self, cp: dict) -> None:
        import socket

        data = self.message(cp)
        try:
            if self._sock is None:
                self._sock = socket.socket(self._family, self._type)
                self._sock.settimeout(self._timeout)
                if self._type == socket.SOCK_STREAM:
                    self._sock.connect(self._address)
            if self._type == socket.SOCK_STREAM:
                self._sock.sendall(data + b"\n")
            else:
                self._sock.sendto(data, self._address)
        except OSError:
            self.close()  # reconnect at the next checkpoint
            raise
        self.sent += 1

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


def verify_offline(*, storage=None, data_dir=None, witness=None, public_key: str | None = None) -> Verification:
    """Opens the store a configuration names (`storage`) or an embedded directory, reads every entry and checks
    them against the witness (default: <data_dir>/audit/witness.jsonl) and the public key (default: signing.pub)."""
    from plantguard.store import open_store
    from plantguard.store.embedded import EmbeddedStore

    base = Path(storage.data_dir if storage is not None else data_dir) / "audit"
    store = open_store(storage) if storage is not None else EmbeddedStore(data_dir)
    try:
        entries = read_entries(store)
    finally:
        store.close()
    if public_key is None and (base / "signing.pub").is_file():
        public_key = (base / "signing.pub").read_text().strip()
    witness = Path(witness) if witness else base / "witness.jsonl"
    if not witness.is_file():
        raise FileNotFoundError(f"no witness file at {witness}: without it the log cannot be checked (give --checkpoint)")
    with open(witness, "rb") as f:
        return verify(entries, f, public_key)
