"""The example capability of docs/examples/shift_notes plugs in as a third-party package would: found through its
entry point, with its own config section, migration, service, API route, page and audit records."""

import shutil
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from plantguard import capabilities
from plantguard.api.app import create_app
from plantguard.config import parse_config
from plantguard.errors import ConfigError
from plantguard.runtime import Platform
from plantguard.testing.auth import auth_headers
from plantguard.testing.factories import plant_dict

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "shift_notes"
LINE = "s1/a1/l1"


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The example installed the way pip leaves a package: the code and a dist-info with its entry points."""
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE / "plantguard_shift_notes", site / "plantguard_shift_notes")
    info = site / "plantguard_shift_notes-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plantguard-shift-notes\nVersion: 0.1.0\n")
    ep = (EXAMPLE / "pyproject.toml").read_text().split('[project.entry-points."plantguard.capabilities"]')[1].strip()
    (info / "entry_points.txt").write_text("[plantguard.capabilities]\n" + ep.replace('"', "") + "\n")
    monkeypatch.syspath_prepend(str(site))
    capabilities.rediscover()
    yield
    capabilities.unregister("shift_notes")
    for m in [m for m in sys.modules if m.startswith("plantguard_shift_notes")]:
        del sys.modules[m]


def test_it_is_found_after_the_built_ins(installed):
    names = [c.name for c in capabilities.registered()]
    assert names[:len(capabilities.BUILTIN_ORDER)] == list(capabilities.BUILTIN_ORDER) and "shift_notes" in names


def test_its_section_is_validated_with_field_paths(installed, tmp_path):
    d = plant_dict(1, data_dir=str(tmp_path))
    d["shift_notes"] = {"max_length": 1}
    with pytest.raises(ConfigError) as e:
        parse_config(d)
    assert [pr.path for pr in e.value.problems] == ["shift_notes.max_length"]


def test_it_plugs_in_end_to_end(installed, tmp_path):
    d = plant_dict(1, data_dir=str(tmp_path))
    d["shift_notes"] = {"max_length": 100}
    p = Platform(parse_config(d))
    try:
        assert "9100_shift_notes" in [n for n, _ in p.store.applied_migrations()]
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=auth_headers(p)) as c:
            r = c.post(f"/api/shift-notes/{LINE}", json={"text": "pump 1 seal weeps; check at 06:00"})
            assert r.status_code == 201, r.text
            assert c.post(f"/api/shift-notes/{LINE}", json={"text": "x" * 101}).status_code == 400
            assert c.post("/api/shift-notes/s1/a1/nope", json={"text": "hello"}).status_code == 404
            assert [n["text"] for n in c.get(f"/api/shift-notes/{LINE}").json()] == ["pump 1 seal weeps; check at 06:00"]
            page = c.get(f"/shift-notes/{LINE}")
            assert page.status_code == 200 and "pump 1 seal weeps" in page.text
            assert c.get(f"/shift-notes/{LINE}", headers={"Authorization": ""}).status_code in (303, 401)
        entries = p.services.audit.entries()
        assert any(e.action == "shift_notes.add" and e.target == LINE for e in entries)
    finally:
        p.stop()


def test_a_broken_plug_in_is_left_out_and_the_platform_starts(tmp_path, monkeypatch, caplog):
    site = tmp_path / "site"
    info = site / "broken_cap-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-cap\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[plantguard.capabilities]\nbroken = no_such_module_here:CAPABILITY\n")
    monkeypatch.syspath_prepend(str(site))
    capabilities.rediscover()
    assert "broken" not in [c.name for c in capabilities.registered()]
    assert "could not be loaded" in caplog.text
    p = Platform(parse_config(plant_dict(1, data_dir=str(tmp_path / "d"))))
    p.stop()
