"""schemathesis against the running API, authenticated as each role: every operation of the OpenAPI document,
with generated valid and invalid inputs, must never answer 5xx. A bounded run here; `make fuzz` runs a long one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from plantguard.config import parse_config
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict
from plantguard.testing.mosquitto import free_port

MAX_EXAMPLES = int(os.environ.get("PLANTGUARD_SCHEMATHESIS_EXAMPLES", "5"))
PHASES = os.environ.get("PLANTGUARD_SCHEMATHESIS_PHASES", "coverage,fuzzing")


def _cli() -> str | None:
    exe = Path(sys.executable).with_name("schemathesis")
    return str(exe) if exe.exists() else shutil.which("schemathesis")


# the two ends in the suite (every permission, the fewest); `make fuzz` runs all four roles
ROLES = os.environ.get("PLANTGUARD_SCHEMATHESIS_ROLES", "admin,viewer").split(",")


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("role", ROLES)
def test_no_operation_answers_a_server_error(tmp_path, role):
    cli = _cli()
    if cli is None:
        pytest.fail("schemathesis is missing: pip install -e '.[test]'")
    import uvicorn

    from plantguard.api.app import create_app

    d = plant_dict(3, data_dir=str(tmp_path / "data"))
    d["sites"][0]["areas"][0]["lines"][0]["oee"] = {"ideal_rate_per_h": 100, "state_categories": {0: "planned_stop", 1: "running"}}
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"] += [
        {"id": "state", "data_type": "state", "states": {0: "off", 1: "on"}}, {"id": "good-count", "data_type": "int"}]
    p = Platform(parse_config(d)).start()
    from plantguard.testing.auth import auth_headers

    auth = auth_headers(p, role)["Authorization"]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(p.services), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        res = subprocess.run(
            [cli, "run", f"http://127.0.0.1:{port}/openapi.json", "--checks", "not_a_server_error", "-n", str(MAX_EXAMPLES),
             "-H", f"Authorization: {auth}",
             "--generation-deterministic", "-w", "2", "--phases", PHASES, "--no-color",
             # the live event stream never ends by design (tests/test_web.py covers it): a fuzzer would wait on it
             "--exclude-path", "/api/stream"],
            capture_output=True, text=True, timeout=1100, cwd=tmp_path)
        out = res.stdout + res.stderr
        assert "Test cases:" in out, out[-3000:]
        assert "ST101" not in out and "Server error" not in out, out[-6000:]
        assert p.services.status.health()["writer_alive"]
    finally:
        server.should_exit = True
        t.join(10)
        p.stop()
