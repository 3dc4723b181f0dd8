"""A real central plantguard (Platform + HTTP API with the gateway router) in a thread, for outage tests and the
recovery benchmark: it can be stopped and started again on the same port and store."""

from __future__ import annotations

import socket
import threading
import time

import duckdb
import uvicorn

from plantguard.domain.model import PlantConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_app(platform):
    from plantguard.api.app import API_PREFIX, create_app
    from plantguard.api.gateway import router

    app = create_app(platform.services)
    if not any(getattr(r, "path", "").startswith(API_PREFIX + "/gateway") for r in app.routes):
        app.include_router(router, prefix=API_PREFIX)
    return app


class CentralServer:
    def __init__(self, cfg: PlantConfig, port: int | None = None) -> None:
        self.cfg = cfg
        self.port = port or free_port()
        self.platform = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.token: str | None = None  # an ingest token for the gateways (kept in the store: valid across restarts)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def env(self) -> dict[str, str]:
        """The environment of a gateway process that forwards to this central side."""
        import os

        from plantguard.connectors.gateway.config import TOKEN_ENV

        return {**os.environ, "PYTHONUNBUFFERED": "1", TOKEN_ENV: self.token or ""}

    def start(self, timeout: float = 20.0) -> "CentralServer":
        from plantguard.runtime import Platform

        self.platform = Platform(self.cfg, alarms=False).start()
        if self.token is None:
            from plantguard.testing.auth import auth_headers

            self.token = auth_headers(self.platform, "engineer", name="gateways", scopes=["ingest", "read"])["Authorization"].split()[1]
        self._server = uvicorn.Server(uvicorn.Config(gateway_app(self.platform), host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="central-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"central server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(20)
            self._server = None
        if self.platform is not None:
            self.platform.stop()
            self.platform = None


def count_per_key(data_dir: str) -> tuple[int, int, int]:
    """(rows, distinct (pid, ts), max copies of one (pid, ts)) in an embedded store that is not open elsewhere."""
    con = duckdb.connect(f"{data_dir}/plantguard.duckdb", read_only=True)
    try:
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT (pid, ts)) FROM raw").fetchone()
        worst = con.execute("SELECT coalesce(max(c), 0) FROM (SELECT count(*) c FROM raw GROUP BY pid, ts)").fetchone()[0]
        return int(rows), int(distinct), int(worst)
    finally:
        con.close()
