"""`plantguard gateway`: configuration errors, the health endpoint, and a clean stop on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import yaml

from plantguard.connectors.gateway.runner import load_gateway_config
from plantguard.connectors.gateway.testing import free_port
from plantguard.errors import ConfigError
from plantguard.testing.factories import plant_dict

CMD = [sys.executable, "-m", "plantguard.cli.main", "gateway", "--config"]


def write(tmp_path, gateway: dict | None) -> str:
    doc = plant_dict(2, data_dir=str(tmp_path / "store"))
    if gateway is not None:
        doc["gateway"] = gateway
    p = tmp_path / "edge.yaml"
    p.write_text(yaml.safe_dump(doc))
    return str(p)


def test_invalid_gateway_section_lists_problems_with_paths(tmp_path):
    try:
        load_gateway_config(write(tmp_path, {"id": "gw 1", "central_url": "http://x", "overflow": "keep_all"}))
    except ConfigError as e:
        text = str(e)
        assert "gateway.id" in text and "gateway.overflow" in text
    else:
        raise AssertionError("accepted an invalid gateway section")
    r = subprocess.run(CMD + [write(tmp_path, None)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "gateway" in r.stderr


def test_gateway_serves_health_and_stops_cleanly(tmp_path):
    port = free_port()
    cfg = write(tmp_path, {"id": "gw1", "central_url": f"http://127.0.0.1:{free_port()}", "data_dir": str(tmp_path / "q"),
                           "health_port": port, "status_interval_s": 0.2, "min_free_bytes": 0})
    proc = subprocess.Popen(CMD + [cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                h = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else "timeout"
                time.sleep(0.1)
        assert h["gateway_id"] == "gw1" and h["queue"]["depth"]["batches"] == 0
        assert h["queue"]["budget"]["overflow"] == "drop_oldest" and h["forwarder"]["url"].endswith("/api/gateway/gw1/batches")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in err and "autonomy" in err
