"""GET /api/stream: the dashboard's live updates as Server-Sent Events.

Once a second the stream sends `latest` (the requested points whose reading changed), `alarms` (records whose
updated_at changed) and, every fifth tick, `health`. Every event carries an id (the newest alarm updated_at seen,
epoch microseconds): a browser that reconnects sends it back as Last-Event-ID and gets the alarm changes it
missed. A comment line every 15 s keeps proxies from closing an idle stream.

The stream ends when the client goes away and when uvicorn shuts down: uvicorn waits for open responses before
it stops, so an endless stream would hold up `plantguard serve` and the demo.
"""

from __future__ import annotations

from plantguard.services import Services

import asyncio
import json
import threading
import time
from typing import Annotated, Any, AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from plantguard.errors import InvalidInput, NotFound

from plantguard.api.errors import ERROR_RESPONSES
from plantguard.api.permissions import require
from plantguard.domain.roles import Permission

router = APIRouter(tags=["live"], dependencies=[require(Permission.READ)])

MAX_POINTS = 500
TICK_S = 1.0
HEALTH_EVERY_TICKS = 5
HEARTBEAT_S = 15.0
RETRY_MS = 2000
# Without a uvicorn server to watch (another ASGI server), a stream ends after this long and the browser
# reconnects at once, so a shutdown waits at most this long.
FALLBACK_LIFETIME_S = 60.0


def _uvicorn_server():
    """The uvicorn Server running this event loop, if any: its should_exit flag is the only shutdown signal an
    open response can see (signals and the demo's stop both set it; the lifespan shutdown comes only after
    every response has finished)."""
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - uvicorn is a dependency
        return None
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None)
            owner = frame.f_locals.get("self") if frame is not None else None
            if isinstance(owner, uvicorn.Server):
                return owner
            coro = getattr(coro, "cr_await", None)
    return None


def _ms(us: int | None) -> float | None:
    return None if us is None else us / 1000


def _sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), allow_nan=False)}\n\n"


def _parse_points(svc: Services, points: str | None) -> list[str]:
    tags = list(dict.fromkeys(t.strip() for t in (points or "").split(",") if t.strip()))
    if len(tags) > MAX_POINTS:
        raise InvalidInput(f"at most {MAX_POINTS} points per stream (got {len(tags)})")
    unknown = svc.telemetry.unknown_points(tags)
    if unknown:
        raise NotFound(f"unknown point(s): {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    return tags


def _since(request: Request, since: int | None) -> int | None:
    raw = request.headers.get("last-event-id", "").strip()
    if raw.isdigit():
        return int(raw)
    return since


class _Reader:
    """What one stream has already sent, so that each tick sends only changes."""

    def __init__(self, svc: Services, tags: list[str], since_us: int | None) -> None:
        self.svc, self.tags = svc, tags
        self.values: dict[str, tuple] = {}
        self.alarm_seen: dict[str, int] = {}
        self.cursor = since_us or 0
        # alarms that changed since the last tick, told by the event bus (inline: a set add, bounded by the number
        # of alarms); each tick then looks at those only instead of every alarm
        self._dirty: set[str] = set()
        self._dirty_lock = threading.Lock()
        self._sub = f"sse-{id(self)}"
        svc.alarms.subscribe_changes(self._sub, self._on_alarm)
        if svc.alarms.enabled:
            for r in svc.alarms.list():
                # Without a cursor the page already shows the current alarms; with one, what changed after it is owed.
                if since_us is None or r.updated_at <= since_us:
                    self.alarm_seen[r.id] = r.updated_at
                    self.cursor = max(self.cursor, r.updated_at)
                else:
                    self._dirty.add(r.id)  # changed after the client's cursor: owed on the first tick

    def latest(self) -> dict:
        out = {}
        for tag, v in self.svc.telemetry.latest(self.tags).items():
            if v is None:
                continue
            key = (v["ts"], v["value"], v["quality"])
            if self.values.get(tag) != key:
                self.values[tag] = key
                value = v["value"]
                out[tag] = {"ts": _ms(v["ts"]), "value": value if value == value else None, "quality": v["quality"]}
        return {"ts": _ms(self.svc.clock()), "values": out}

    def _on_alarm(self, event) -> None:  # an AlarmChanged
        with self._dirty_lock:
            self._dirty.add(event.record.id)

    def close(self) -> None:
        self.svc.alarms.unsubscribe_changes(self._sub)

    def alarms(self) -> list[dict]:
        if not self.svc.alarms.enabled:
            return []
        from plantguard.api.views import alarm_public

        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        changed = []
        for rid in sorted(dirty):
            try:
                r = self.svc.alarms.get(rid)
            except NotFound:  # an alarm whose rule left the plant model
                continue
            if self.alarm_seen.get(r.id) != r.updated_at:
                self.alarm_seen[r.id] = r.updated_at
                changed.append(alarm_public(r))
            self.cursor = max(self.cursor, r.updated_at)
        return changed

    def health(self) -> dict:
        p = self.svc
        st = p.status.pipeline_stats()
        ing = p.status.ingest()
        active = p.alarms.active_count() if p.alarms.enabled else None
        h = p.status.health()
        return {"ts": _ms(p.clock()), "status": h["status"], "readings_per_s": ing.readings_per_s, "accepted": ing.accepted,
                "rejected": ing.rejected, "queued_readings": ing.queued_readings, "lag_ms_last": st.lag_us_last / 1000,
                "writer_alive": ing.writer_alive, "active_alarms": active,
                "sources": {k: bool(v.get("ok", True)) for k, v in h["sources"].items()}}


def _read(reader: _Reader, with_health: bool) -> tuple:
    return reader.latest() if reader.tags else None, reader.alarms(), reader.health() if with_health else None


def _still_allowed(request: Request) -> bool:
    """The stream's credential, checked again (the one checked at its start may since have been revoked, expired,
    logged out or lost its role's read permission)."""
    from plantguard.api.permissions import credential
    from plantguard.errors import Unauthenticated
    from plantguard.domain.roles import Permission as P

    if request.app.state.services.accounts is None:
        return True
    try:
        return credential(request, touch=False).can(P.READ)
    except Unauthenticated:
        return False


async def event_stream(request: Request, make_reader) -> AsyncIterator[str]:
    state = request.app.state
    tick = float(getattr(state, "stream_tick_s", TICK_S))
    server = _uvicorn_server()
    lifetime = getattr(state, "stream_lifetime_s", None) or (None if server is not None else FALLBACK_LIFETIME_S)
    started = last_beat = time.monotonic()
    # the reader (and its subscription to alarm changes) lives exactly as long as this generator runs
    reader = await run_in_threadpool(make_reader)
    try:
        async for chunk in _ticks(request, reader, tick, server, lifetime, started, last_beat):
            yield chunk
    finally:
        reader.close()  # the stream's subscription ends with it, whatever ended it


async def _ticks(request: Request, reader: _Reader, tick: float, server, lifetime, started: float,
                 last_beat: float) -> AsyncIterator[str]:
    n = 0
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        if server is not None and server.should_exit:
            return
        if lifetime is not None and time.monotonic() - started >= lifetime:
            yield "retry: 200\n\n"  # a planned end: the browser comes back at once
            return
        if await request.is_disconnected():
            return

        if n and n % HEALTH_EVERY_TICKS == 0 and not await run_in_threadpool(_still_allowed, request):
            return  # the session ended or the token was revoked: no more plant data on this stream
        latest, alarms, health = await run_in_threadpool(_read, reader, n % HEALTH_EVERY_TICKS == 0)
        eid = reader.cursor
        if latest is not None:
            yield _sse("latest", latest, eid)
        if alarms:
            yield _sse("alarms", {"ts": _ms(reader.svc.clock()), "data": alarms, "count": len(alarms)}, eid)
        if health is not None:
            yield _sse("health", health, eid)
        if time.monotonic() - last_beat >= HEARTBEAT_S:
            last_beat = time.monotonic()
            yield ": keepalive\n\n"
        n += 1
        # Short sleeps so that a shutdown is seen within a fraction of a tick.
        deadline = time.monotonic() + tick
        while (left := deadline - time.monotonic()) > 0:
            if server is not None and server.should_exit:
                return
            await asyncio.sleep(min(left, 0.25))


@router.get("/stream", response_class=StreamingResponse, responses={
    **ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events: latest, alarms, health"}})
async def live_stream(
    request: Request,
    points: Annotated[str | None, Query(description=f"comma-separated tags whose new readings to send (at most {MAX_POINTS})")] = None,
    since: Annotated[int | None, Query(ge=0, description="epoch microseconds: also send alarms changed after this "
                                                       "(the Last-Event-ID header takes precedence)")] = None,
) -> StreamingResponse:
    """Live updates for the dashboard (text/event-stream): `latest` every second for the requested points (changed
    readings only), `alarms` with the records that changed, `health` every 5 s."""
    svc: Services = request.app.state.services
    tags = _parse_points(svc, points)
    since_us = _since(request, since)
    return StreamingResponse(event_stream(request, lambda: _Reader(svc, tags, since_us)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
