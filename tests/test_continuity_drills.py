"""Every drill scenario end to end on the simulated line, at simulated time, with its verdict; the experiment's
rules (gate, rollbacks that always run, real plants refuse intrusive drills); a database outage with a real
PostgreSQL stopped and started, zero readings lost."""

import pytest

from plantguard.continuity import drills as D
from plantguard.sim.drills import SCENARIOS, DbControl, DrillPlant, write_report


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    p = DrillPlant(tmp_path_factory.mktemp("drill"))
    yield p
    p.close()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenario_passes_against_its_targets(plant, scenario, tmp_path):
    j = plant.drill(scenario)
    assert j.status == "passed", (j.reasons, j.services, j.data)
    assert j.data["lost_readings"] == 0
    if scenario != "platform-restart":
        assert j.detection_s is not None and j.detection_s <= 1800
    paths = write_report(j, tmp_path)
    assert "<svg" in paths["html"].read_text() and scenario in paths["md"].read_text()


def test_gateway_outage_is_one_incident_at_the_gateway(plant):
    j = plant.drill("gateway-outage")
    assert j.status == "passed"
    roots = [i.root for i in plant.services.continuity.incidents(limit=20) if i.merged_into is None and i.started_at >= j.injected_at]
    assert roots.count("wsn-gateway") == 1 and not [r for r in roots if r in ("pump-sensor", "conveyor-sensor")]


def test_the_rules_of_an_experiment():
    t = {"now": 0}
    done = []

    def advance(s):
        t["now"] += int(s * 1e6)

    gate = D.Experiment("x", "", [D.Probe("ok", lambda: False)], [D.Action("m", lambda: done.append("m"))],
                        [D.Action("r", lambda: done.append("r"))])
    j = D.run(gate, clock=lambda: t["now"], advance=advance)
    assert j.status == "not_started" and done == []           # nothing injected, nothing rolled back

    def boom():
        raise RuntimeError("injection broke")
    exp = D.Experiment("x", "", [D.Probe("ok", lambda: True)], [D.Action("m", boom)],
                       [D.Action("r1", lambda: (_ for _ in ()).throw(OSError("rollback broke"))), D.Action("r2", lambda: done.append("r2"))],
                       hold_s=20)
    j = D.run(exp, clock=lambda: t["now"], advance=advance)
    assert done == ["r2"] and j.status == "failed"            # every rollback ran; a failed one fails the drill
    assert any("rollback r1 failed" in r for r in j.reasons) and any("method failed" in r for r in j.reasons)
    with pytest.raises(D.DrillRefused):
        D.run(exp, clock=lambda: 0, advance=advance, plant="real")


def test_database_outage_with_real_postgresql_loses_nothing(tmp_path):
    from plantguard.sim.plant import demo_config
    from plantguard.testing.pg import TEST_SETTINGS, PostgresServer

    srv = PostgresServer(TEST_SETTINGS).start()
    try:
        cfg = demo_config(str(tmp_path / "d"))
        cfg["storage"] = {"backend": "postgres", "postgres_dsn": srv.dsn_for(srv.create_database()), "data_dir": str(tmp_path / "d")}
        p = DrillPlant(tmp_path / "drill", config=cfg, db=DbControl(stop=srv.pause, start=srv.resume))
        try:
            j = p.drill("database-outage")
        finally:
            p.close()
    finally:
        srv.stop()
    assert j.status == "passed", (j.reasons, j.data)
    assert j.data["generated"] > 5_000 and j.data["lost_readings"] == 0
    assert j.detection_s is not None
