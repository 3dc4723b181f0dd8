"""Plant model validation: every problem reported at once, each with its exact field path."""

from __future__ import annotations

import pytest

from plantguard.config import dump_config, load_config, parse_config
from plantguard.errors import ConfigError
from plantguard.testing.factories import plant_dict


def problems(data) -> dict[str, str]:
    with pytest.raises(ConfigError) as ei:
        parse_config(data)
    return {p.path: p.message for p in ei.value.problems}


def test_valid_config_round_trips():
    cfg = parse_config(plant_dict(3))
    assert [t for t, *_ in cfg.iter_points()] == [f"s1/a1/l1/pump1/plc1/p{i}" for i in range(3)]
    again = parse_config(__import__("yaml").safe_load(dump_config(cfg)))
    assert again == cfg


def test_structural_errors_are_all_reported_with_paths():
    d = plant_dict(2)
    pts = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"]
    pts[0]["period"] = "soon"
    pts[1]["data_type"] = "complex"
    pts[1]["colour"] = "red"
    d["mqtt"] = {"port": 70000}
    p = problems(d)
    base = "sites[0].areas[0].lines[0].assets[0].devices[0].points"
    assert set(p) == {f"{base}[0].period", f"{base}[1].data_type", f"{base}[1].colour", "mqtt.port"}
    assert "invalid duration" in p[f"{base}[0].period"]
    assert "unknown field" in p[f"{base}[1].colour"]


def test_semantic_errors_are_all_reported_with_paths():
    d = plant_dict(3)
    dev = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]
    dev["points"][1]["id"] = "p0"  # duplicate
    dev["points"][2]["range"] = {"low": 10, "high": 5}
    dev["points"][0]["alarms"]["limits"]["hi"] = 95  # above hihi (90)
    d["sites"][0]["timezone"] = "Mars/Olympus"
    p = problems(d)
    base = "sites[0].areas[0].lines[0].assets[0].devices[0].points"
    assert f"{base}[1].id" in p and "duplicate id 'p0'" in p[f"{base}[1].id"]
    assert f"{base}[2].range" in p
    assert f"{base}[0].alarms.limits.hihi" in p
    assert "sites[0].timezone" in p


def test_limits_outside_engineering_range_rejected():
    d = plant_dict(1)
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][0]["alarms"]["limits"]["hihi"] = 5000
    p = problems(d)
    assert any(k.endswith("alarms.limits.hihi") and "outside the engineering range" in v for k, v in p.items())


def test_state_points_need_states():
    d = plant_dict(1, alarms=False)
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][0]["data_type"] = "state"
    assert any(k.endswith("points[0].states") for k in problems(d))


def test_postgres_backend_needs_dsn():
    d = plant_dict(1)
    d["storage"] = {"backend": "postgres"}
    assert "storage.postgres_dsn" in problems(d)


def test_top_level_must_be_mapping():
    assert "" in problems([1, 2])


def test_load_config_reports_yaml_syntax_with_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("sites:\n  - id: s1\n    areas: [\n")
    with pytest.raises(ConfigError) as ei:
        load_config(f)
    assert "not valid YAML" in str(ei.value) and "line" in str(ei.value)


def test_load_config_missing_file(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read file" in str(ei.value)


def test_structural_and_cross_field_errors_reported_together():
    d = plant_dict(3)
    pts = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"]
    pts[0]["unit"] = 5  # structural
    pts[1]["id"] = "p0"  # duplicate (cross-field)
    pts[2]["range"] = {"low": 3, "high": 1}  # cross-field
    p = problems(d)
    base = "sites[0].areas[0].lines[0].assets[0].devices[0].points"
    assert {f"{base}[0].unit", f"{base}[1].id", f"{base}[2].range"} <= set(p)


@pytest.mark.parametrize("mqtt, path", [
    ({"topic_prefix": "plant/#"}, "mqtt.topic_prefix"),
    ({"topic_prefix": "/plant"}, "mqtt.topic_prefix"),
    ({"reconnect_min": 10, "reconnect_max": 1}, "mqtt.reconnect_max"),
])
def test_mqtt_settings_checked_at_load(mqtt, path):
    d = plant_dict(1)
    d["mqtt"] = mqtt
    assert path in problems(d)


def test_gateway_section_checked_with_its_own_schema():
    d = plant_dict(1)
    d["gateway"] = {"id": "edge 1", "central_url": "http://127.0.0.1:8000"}
    assert "gateway.id" in problems(d)
    d["gateway"] = {"id": "edge-1", "central_url": "http://127.0.0.1:8000"}
    assert parse_config(d).gateway["id"] == "edge-1"


def test_durations_are_parsed_once_at_load_and_written_back_as_given(tmp_path):
    """Every duration of the model carries its microseconds from the load (defaults included); the document
    keeps the text or number it was given."""
    from plantguard.config import dump_config
    from plantguard.domain.fields import us_of

    d = plant_dict(2, data_dir=str(tmp_path))
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][0]["period"] = "250ms"
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][1]["period"] = 2
    cfg = parse_config(d)
    p0, p1 = cfg.sites[0].areas[0].lines[0].assets[0].devices[0].points[:2]
    assert (p0.period, p0.period.us) == ("250ms", 250_000) and (p1.period, p1.period.us) == (2, 2_000_000)
    assert cfg.storage.retention_raw.us == us_of(cfg.storage.retention_raw) > 0  # a default, parsed too
    again = parse_config(__import__("yaml").safe_load(dump_config(cfg)))
    p0b = again.sites[0].areas[0].lines[0].assets[0].devices[0].points[0]
    assert p0b.period == "250ms" and isinstance(again.sites[0].areas[0].lines[0].assets[0].devices[0].points[1].period, float)
