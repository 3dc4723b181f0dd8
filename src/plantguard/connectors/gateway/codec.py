"""Binary encoding of one batch (a queue record's payload, and the body the forwarder sends).

    payload = u32 meta_len | meta (JSON: source, prefix, names, dead letters) | idx | ts | value | quality | src_ts

Point names are dictionary-encoded (a device sends the same few names again and again); columns are raw
little-endian numpy arrays, so timestamps keep their exact microseconds and decoding costs no Python object per
reading. About 21 bytes per reading plus the names once per batch.

A frame (what the forwarder posts) is a sequence of records, each: header (magic, payload length, seq,
appended_us, crc32 of seq + appended_us + payload) + payload. The same header guards records on disk.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import asdict

import numpy as np
import orjson

from plantguard.domain.readings import DeadLetter, RawBatch
from plantguard.errors import InvalidInput

MAGIC = b"PGQ1"
HEADER = struct.Struct("<4sIQqI")  # magic, payload length, seq, appended_us, crc32
MAX_PAYLOAD = 256 * 1024 * 1024
CONTENT_TYPE = "application/vnd.plantguard.gateway-batches"
DROPPED_HEADER = "X-Plantguard-Dropped"  # "first-last,first-last": seq ranges the gateway dropped (newest last)
# "autonomy_h=12.5;bytes=1048576;limit=1073741824;oldest_s=3.2": the gateway's disk buffer as it sends (autonomy_h
# is "none" while nothing flows in); shown centrally on the devices page
BUFFER_HEADER = "X-Plantguard-Buffer"


def buffer_header(health: dict) -> str:
    aut = health.get("autonomy_hours")
    return (f"autonomy_h={'none' if aut is None else f'{aut:.3f}'};bytes={health['depth']['bytes']};"
            f"limit={health['budget']['limit_bytes']};oldest_s={health['oldest_age_s']:.1f}")


def parse_buffer_header(text: str | None) -> dict | None:
    """The buffer header as numbers; None when absent or malformed (an old gateway: nothing to show)."""
    if not text:
        return None
    out: dict = {}
    try:
        for part in text.split(";"):
            k, _, v = part.partition("=")
            k = k.strip()
            if k in ("autonomy_h", "oldest_s"):
                out[k] = None if v.strip() == "none" else float(v)
            elif k in ("bytes", "limit"):
                out[k] = int(v)
    except ValueError:
        return None
    return out if {"autonomy_h", "bytes", "limit"} <= out.keys() else None


def encode_batch(batch: RawBatch, dead: list[DeadLetter] | None = None) -> bytes:
    code: dict[str, int] = {}
    idx = [code.setdefault(p, len(code)) for p in batch.points]  # first-seen order; far cheaper than np.unique on str
    names = list(code)
    idx_dtype = np.uint16 if len(names) < 65536 else np.uint32
    meta = orjson.dumps({"source": batch.source, "prefix": batch.prefix, "n": len(batch), "names": list(names),
                         "w": np.dtype(idx_dtype).itemsize, "dead": [asdict(d) for d in dead or []]})
    return b"".join([struct.pack("<I", len(meta)), meta, np.asarray(idx, idx_dtype).tobytes(),
                     np.ascontiguousarray(batch.ts, "<i8").tobytes(), np.ascontiguousarray(batch.value, "<f8").tobytes(),
                     np.ascontiguousarray(batch.quality, "u1").tobytes(), np.ascontiguousarray(batch.src_ts, "<i8").tobytes()])


def decode_batch(payload: bytes | memoryview) -> tuple[RawBatch, list[DeadLetter]]:
    try:
        (mlen,) = struct.unpack_from("<I", payload, 0)
        meta = orjson.loads(bytes(payload[4:4 + mlen]))
        n, w = int(meta["n"]), int(meta["w"])
        off = 4 + mlen
        if len(payload) != off + n * (w + 8 + 8 + 1 + 8):
            raise ValueError("column lengths do not match the reading count")
        idx = np.frombuffer(payload, np.uint16 if w == 2 else np.uint32, n, off); off += n * w
        ts = np.frombuffer(payload, "<i8", n, off).astype(np.int64); off += 8 * n
        value = np.frombuffer(payload, "<f8", n, off).astype(np.float64); off += 8 * n
        quality = np.frombuffer(payload, np.uint8, n, off).copy(); off += n
        src_ts = np.frombuffer(payload, "<i8", n, off).astype(np.int64)
        names = meta["names"]
        points = [names[i] for i in idx.tolist()] if n else []
        dead = [DeadLetter(**d) for d in meta.get("dead", [])]
        return RawBatch(points, ts, value, quality, src_ts, source=meta["source"], prefix=meta["prefix"]), dead
    except (ValueError, KeyError, TypeError, IndexError, struct.error, orjson.JSONDecodeError) as e:
        raise InvalidInput(f"malformed batch payload: {e}") from None


def crc(seq: int, appended_us: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<Qq", seq, appended_us))) & 0xFFFFFFFF


def pack_record(seq: int, appended_us: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, len(payload), seq, appended_us, crc(seq, appended_us, payload)) + payload


def unpack_frame(body: bytes) -> list[tuple[int, int, memoryview]]:
    """(seq, appended_us, payload) of every record of a frame; raises InvalidInput on any damage."""
    out = []
    view = memoryview(body)
    off = 0
    while off < len(body):
        if len(body) - off < HEADER.size:
            raise InvalidInput("truncated record header")
        magic, plen, seq, at, c = HEADER.unpack_from(body, off)
        off += HEADER.size
        if magic != MAGIC or plen > len(body) - off:
            raise InvalidInput("bad record header")
        payload = view[off:off + plen]
        if crc(seq, at, payload) != c:
            raise InvalidInput(f"checksum mismatch in record seq {seq}")
        out.append((seq, at, payload))
        off += plen
    return out


def decode_record(record: bytes) -> tuple[RawBatch, list[DeadLetter]]:
    """One queued record (header and payload, as GatewayQueue.read returns it), checksum verified, decoded."""
    frames = unpack_frame(record)
    if len(frames) != 1:
        raise InvalidInput(f"a record holds one batch, not {len(frames)}")
    return decode_batch(frames[0][2])
