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


def build(ctx) -> Parts:
    c = Counter()
    c.every = ctx.config.every
    return Parts(processors=[c], services={"counter": c})


def routers():
    from plantguard.api.permissions import require
    from plantguard.domain.roles import Permission

    r = APIRouter(dependencies=[require(Permission.READ)])  # every route names its permission (deny by default)

    @r.get("/counter")
    def count(request: Request) -> dict:
        return {"readings": request.app.state.services.of("counter").readings}

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
    assert p.cfg.section("counter").every == 3 and p.services.of("counter").every == 3
    p.pipeline.process_now(RawBatch.build([tag(0)], [p.clock() - 1_000_000], [1.0]))
    assert p.services.of("counter").readings == 1
    with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=auth_headers(p)) as c:
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


def test_built_ins_are_found_through_their_entry_points():
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group=capabilities.GROUP)}
    assert set(capabilities.BUILTIN_ORDER) <= set(found)
    assert all(found[n].endswith(":CAPABILITY") for n in capabilities.BUILTIN_ORDER)


def test_a_capability_gets_only_the_store_protocols_it_declares(tmp_path):
    from plantguard.store.protocols import SqlStore

    seen = {}

    def build(ctx) -> Parts:
        seen["store"] = ctx.store
        return Parts()

    capabilities.register(Capability("narrow", build=build, stores=(SqlStore,)))
    try:
        p = Platform(parse_config(plant_dict(1, data_dir=str(tmp_path))))
        st = seen["store"]
        assert callable(st.fetch) and callable(st.execute) and callable(st.insert_columns)
        assert not hasattr(st, "write") and not hasattr(st, "raw") and not hasattr(st, "save_alarms")
        p.stop()
    finally:
        capabilities.unregister("narrow")


def test_no_capability_sets_an_attribute_on_the_platform(tmp_path):
    """What the platform holds after construction is its own parts; the capabilities' are in its services."""
    p = Platform(parse_config(plant_dict(1, data_dir=str(tmp_path))))
    try:
        for name in ("alarms", "security", "audit", "ca", "broker_credentials", "analytics", "notifier"):
            assert name not in vars(p), name
        assert p.services.accounts is not None and p.services.alarms.enabled and p.services.analytics.enabled
    finally:
        p.stop()


def test_two_capabilities_cannot_both_divert_readings(tmp_path):
    capabilities.register(Capability("diverter2", build=lambda ctx: Parts(diverter=object())))
    try:
        with pytest.raises(ValueError, match="diverter"):
            Platform(parse_config(plant_dict(1, data_dir=str(tmp_path))))
    finally:
        capabilities.unregister("diverter2")


def test_capability_migrations_apply_in_name_order():
    """Stores record migrations by name; found in entry-point order (alphabetical by capability) the security
    capability's 0100 came after continuity's 0400, and a store's record no longer matched the plan."""
    from plantguard.store import migrations

    capabilities.registered()
    own = [m.name for m in migrations.all_migrations()][len(migrations.BUILTIN):]
    assert own == sorted(own) and "0400_continuity" in own
