"""A capability plugs in from one place: its config section (errors by field path), its migrations (both
backends, recorded by name), its processor on the pipeline, its service and its API route; the built-in alarms and
analytics use the same seam."""

import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from plantguard.testing.auth import auth_headers
from plantguard import capabilities
from plantguard.api.app import create_app
from plantguard.capabilities import Capability, Parts
from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.errors import ConfigError
from plantguard.runtime import Platform
from plantguard.store.migrations import Migration
from plantguard.testing.factories import plant_dict, tag


class CounterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(10, gt=0)


class Counter:
    name = "counter"

    def __init__(self) -> None:
        self.readings = 0

    def on_batch(self, batch, now) -> None:
        self.readings += len(batch)

    def on_tick(self, now) -> None:
        pass


def build(platform) -> Parts:
    c = Counter()
    c.every = platform.cfg.section("counter").every
    return Parts(processors=[c], services={"counter": c})


def routers():
    from plantguard.api.permissions import require
    from plantguard.security.roles import Permission

    r = APIRouter(dependencies=[require(Permission.READ)])  # every route names its permission (deny by default)

    @r.get("/counter")
    def count(request: Request) -> dict:
        return {"readings": request.app.state.platform.services.counter.readings}

    return [r]


CAP = Capability("counter", section=CounterSettings, build=build, routers=routers, migrations=(
    Migration("9001_counter", embedded=("CREATE TABLE counter_marks (n BIGINT)",),
              postgres=("CREATE TABLE counter_marks (n BIGINT)",), owner="counter"),))


@pytest.fixture
def counter_cap():
    capabilities.register(CAP)
    yield CAP
    capabilities.unregister("counter")


def test_a_capability_plugs_in_everywhere(tmp_path, counter_cap):
    d = plant_dict(1, data_dir=str(tmp_path))
    d["counter"] = {"every": 3}
    p = Platform(parse_config(d))
    assert "9001_counter" in [n for n, _ in p.store.applied_migrations()]
    assert p.cfg.section("counter").every == 3 and p.services.counter.every == 3
    p.pipeline.process_now(RawBatch.build([tag(0)], [p.clock() - 1_000_000], [1.0]))
    assert p.services.counter.readings == 1
    with TestClient(create_app(p), base_url="http://127.0.0.1", headers=auth_headers(p)) as c:
        assert c.get("/api/counter").json() == {"readings": 1}
    p.stop()


def test_its_section_is_validated_with_field_paths(tmp_path, counter_cap):
    d = plant_dict(1, data_dir=str(tmp_path))
    d["counter"] = {"every": 0, "nope": 1}
    with pytest.raises(ConfigError) as e:
        parse_config(d)
    assert {pr.path for pr in e.value.problems} == {"counter.every", "counter.nope"}


def test_without_the_capability_its_section_is_an_unknown_field(tmp_path):
    d = plant_dict(1, data_dir=str(tmp_path))
    d["counter"] = {"every": 3}
    with pytest.raises(ConfigError) as e:
        parse_config(d)
    assert [pr.path for pr in e.value.problems] == ["counter"]


def test_the_built_ins_use_the_same_seam():
    names = [c.name for c in capabilities.registered()]
    assert names[:3] == ["security", "alarms", "analytics"]
    with pytest.raises(ValueError):
        capabilities.register(Capability("alarms"))


def test_built_ins_keep_their_order_whichever_module_is_imported_first():
    import subprocess
    import sys

    code = ("import plantguard.connectors.mqtt.capability, plantguard.plant_analytics.capability\n"
            "from plantguard import capabilities\n"
            "print([c.name for c in capabilities.registered()][:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['security', 'alarms', 'analytics']"
