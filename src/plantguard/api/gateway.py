"""Central side of the edge gateway: POST /api/gateway/{gateway_id}/batches.

A gateway posts its queued batches in seq order, several per request (codec frame: records with seq and CRC) or
one as JSON ({"seq": n, "readings": [...]} in the /api/ingest reading format). Each batch goes through the
ingest pipeline; the answer is sent only after the durable write, and only then does the gateway delete the
batches. A batch sent twice (the answer was lost, the gateway restarted) is stored once: the pipeline drops
readings whose (point, ts) is already stored and counts them as duplicates.

The last seq per gateway is tracked in memory; a jump forward is a gap, logged and shown in GET /api/gateway.
A gap the gateway announced (its drop_oldest overflow policy dropped those batches, header
X-Plantguard-Dropped) is expected; any other gap means batches went missing on the way.
"""

from __future__ import annotations

from plantguard.services import Services

import asyncio
import logging
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from plantguard.connectors.gateway import codec
from plantguard.domain.readings import IngestResult
from plantguard.errors import InvalidInput, NotFound
from plantguard.ingest.parse import parse_document
from plantguard.timeutil import now_us

from plantguard.api.deps import ServicesDep, parse_json, read_body
from plantguard.api.errors import ERROR_RESPONSES
from plantguard.api.permissions import principal_of, require
from plantguard.domain.roles import Permission

log = logging.getLogger(__name__)
router = APIRouter(prefix="/gateway", tags=["gateway"])
READ = [require(Permission.READ)]  # per route: the batches route needs ingest only
GATEWAY_ID = r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,63}$"
MAX_GAPS_KEPT = 50
DROPPED_HEADER = codec.DROPPED_HEADER


@dataclass
class GatewayState:
    gateway_id: str
    last_seq: int = 0
    last_seen: int = 0
    batches: int = 0
    resent_batches: int = 0  # seq at or below last_seq: a retry, deduplicated by the pipeline
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    gaps: list = field(default_factory=list)  # {"from", "to", "announced", "at"}
    unannounced_gap_batches: int = 0
    buffer: dict | None = None  # the gateway's disk buffer as of its last batch (autonomy_h, bytes, limit, oldest_s)


class GatewayTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.gateways: dict[str, GatewayState] = {}

    def record(self, gid: str, seqs: list[int], res: IngestResult, dropped: list[tuple[int, int]],
               buffer: dict | None = None) -> GatewayState:
        with self._lock:
            st = self.gateways.setdefault(gid, GatewayState(gid))
            if buffer is not None:
                st.buffer = buffer
            for s in seqs:
                if st.last_seq and s > st.last_seq + 1:
                    lo, hi = st.last_seq + 1, s - 1
                    announced = all(any(a <= x <= b for a, b in dropped) for x in (lo, hi))
                    st.gaps = (st.gaps + [{"from": lo, "to": hi, "announced": announced, "at": now_us()}])[-MAX_GAPS_KEPT:]
                    if announced:
                        log.warning("gateway %s: seq %d..%d dropped at the gateway (byte budget reached)", gid, lo, hi)
                    else:
                        st.unannounced_gap_batches += hi - lo + 1
                        log.error("gateway %s: seq gap %d..%d: %d batch(es) never arrived", gid, lo, hi, hi - lo + 1)
                if s <= st.last_seq:
                    st.resent_batches += 1
                st.last_seq = max(st.last_seq, s)
            st.batches += len(seqs)
            st.accepted += res.accepted
            st.duplicates += res.duplicates
            st.rejected += res.rejected
            st.last_seen = now_us()
            return st


def tracker_of(request: Request) -> GatewayTracker:
    state = request.app.state
    if getattr(state, "gateway_tracker", None) is None:
        state.gateway_tracker = GatewayTracker()
    return state.gateway_tracker


class GatewayBatchResult(BaseModel):
    gateway_id: str
    seq: int = Field(description="the highest seq now durably written: the gateway may delete up to it")
    first_seq: int
    batches: int
    accepted: int = Field(description="readings stored")
    duplicates: int = Field(description="readings already stored (a resent batch): ignored")
    rejected: int = Field(description="readings refused (kept in the dead letters with their reason)")


class GatewayStatePublic(BaseModel):
    gateway_id: str
    last_seq: int
    last_seen: int = Field(description="epoch microseconds of the last batch")
    batches: int
    resent_batches: int
    accepted: int
    duplicates: int
    rejected: int
    gaps: list[dict]
    unannounced_gap_batches: int = Field(description="batches missing without the gateway having dropped them")
    buffer: dict | None = Field(None, description="the gateway's disk buffer as of its last batch: autonomy_h (hours it can "
                                                  "still absorb its input offline; null with no input), bytes, limit, oldest_s")


class GatewayList(BaseModel):
    data: list[GatewayStatePublic]
    count: int


def _parse_dropped(text: str | None) -> list[tuple[int, int]]:
    out = []
    for part in (text or "").split(","):
        a, _, b = part.strip().partition("-")
        if a.isdigit() and b.isdigit():
            out.append((int(a), int(b)))
    return out


def _decode(raw: bytes, content_type: str, gid: str) -> list[tuple[int, Any, list]]:
    source = f"gateway:{gid}"
    if content_type.startswith(codec.CONTENT_TYPE):
        out = []
        for seq, _at, payload in codec.unpack_frame(raw):
            batch, dead = codec.decode_batch(payload)
            batch.source = source
            for d in dead:
                d.source = source
            out.append((seq, batch, dead))
        return out
    doc = parse_json(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int) or doc["seq"] < 1:
        raise InvalidInput('expected {"seq": <positive integer>, "readings": [...]}')
    batch, dead = parse_document(doc, source)
    return [(doc["seq"], batch, dead)]


@router.post("/{gateway_id}/batches", response_model=GatewayBatchResult, responses=ERROR_RESPONSES,
             dependencies=[require(Permission.INGEST)])
async def receive_gateway_batches(gateway_id: str, request: Request, svc: ServicesDep) -> Any:
    """Stores a gateway's batches (in seq order) and answers once they are durably written; resent batches are
    stored once. Body: a binary frame (Content-Type application/vnd.plantguard.gateway-batches) or JSON
    {"seq": n, "readings": [...]}."""
    if not re.match(GATEWAY_ID, gateway_id):
        raise InvalidInput("gateway id: letters, digits, '_', '-', '.', at most 64 characters")
    bound = principal_of(request).device  # a gateway's token bound to its path forwards only the devices under it
    raw = await read_body(request, svc.model.current().ingest.max_payload_bytes)
    content_type = request.headers.get("content-type", "")
    timeout = getattr(request.app.state, "submit_timeout_s", 10.0)

    def decode_and_submit():
        items = _decode(raw, content_type, gateway_id)
        if not items:
            raise InvalidInput("no batch in the request")
        seqs = [s for s, _, _ in items]
        if any(b <= a for a, b in zip(seqs, seqs[1:])):
            raise InvalidInput("batches must be in increasing seq order")
        if bound is not None:  # every batch is checked before any is queued: nothing half-stored
            for _, b, d in items:
                svc.telemetry.check_scope(b, d, bound)
        return seqs, [svc.telemetry.submit(b, d, timeout=timeout) for _, b, d in items]

    seqs, futures = await run_in_threadpool(decode_and_submit)
    total = IngestResult()
    for f in futures:  # every one must be durable before the gateway may delete anything
        total.merge(await asyncio.wrap_future(f))
    tracker_of(request).record(gateway_id, seqs, total, _parse_dropped(request.headers.get(DROPPED_HEADER)),
                               codec.parse_buffer_header(request.headers.get(codec.BUFFER_HEADER)))
    return {"gateway_id": gateway_id, "seq": seqs[-1], "first_seq": seqs[0], "batches": len(seqs),
            "accepted": total.accepted, "duplicates": total.duplicates, "rejected": total.rejected}


@router.get("", response_model=GatewayList, dependencies=READ)
def list_gateways(request: Request) -> Any:
    """Every gateway heard from since the server started: last seq, counts and seq gaps."""
    data = [asdict(s) for s in tracker_of(request).gateways.values()]
    return {"data": data, "count": len(data)}


@router.get("/{gateway_id}", response_model=GatewayStatePublic, responses=ERROR_RESPONSES, dependencies=READ)
def get_gateway(gateway_id: str, request: Request) -> Any:
    """One gateway's last seq, counts and seq gaps."""
    st = tracker_of(request).gateways.get(gateway_id)
    if st is None:
        raise NotFound(f"no batch received from gateway {gateway_id!r} since the server started")
    return asdict(st)
