"""Small plant configurations for tests and benchmarks."""

from __future__ import annotations

from plantguard.domain.model import PlantConfig
from plantguard.config import parse_config


def plant_dict(n_points: int = 3, *, data_dir: str = "./data", alarms: bool = True, device: str = "plc1") -> dict:
    """One site/area/line/asset/device with `n_points` float points p0..pN-1, range [-1000, 1000], period 1 s.
    With alarms, p0 carries HI/HIHI/LO/LOLO limits (hi 80, hihi 90, lo 20, lolo 10, deadband 2)."""
    points = []
    for i in range(n_points):
        p = {"id": f"p{i}", "unit": "degC", "range": {"low": -1000, "high": 1000}, "period": "1s"}
        if alarms and i == 0:
            p["alarms"] = {"limits": {"hihi": 90, "hi": 80, "lo": 20, "lolo": 10, "deadband": 2}}
        points.append(p)
    return {
        "sites": [{"id": "s1", "timezone": "UTC", "areas": [{"id": "a1", "lines": [{"id": "l1", "assets": [
            {"id": "pump1", "kind": "pump", "devices": [{"id": device, "points": points}]}]}]}]}],
        # a century of raw retention: tests use fixed dates and must not start failing as the calendar moves on
        "storage": {"backend": "embedded", "data_dir": data_dir, "retention_raw": "36500d"},
    }


def small_plant(n_points: int = 3, **kw) -> PlantConfig:
    return parse_config(plant_dict(n_points, **kw))


def tag(i: int, device: str = "plc1") -> str:
    return f"s1/a1/l1/pump1/{device}/p{i}"
