"""Actors: who did it, recorded with the change as kind:name."""

import pytest

from plantguard.testing.auth import auth_headers, login
from plantguard.domain.actor import Actor, ActorKind
from plantguard.errors import InvalidInput


def test_recorded_form_round_trips_and_bare_names_are_users():
    for a in (Actor.user("alice"), Actor.system("alarms"), Actor(ActorKind.token, "ci-bot"), Actor.cli()):
        assert Actor.parse(str(a)) == a
    assert Actor.parse("alice") == Actor.user("alice")
    assert Actor.parse("nope:thing") == Actor.user("nope:thing")


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "a\nb", None])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidInput):
        Actor.user(name)


def test_model_edits_through_the_api_record_who(tmp_path):
    from fastapi.testclient import TestClient

    from plantguard.api.app import create_app
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.testing.factories import plant_dict

    p = Platform(parse_config(plant_dict(2, data_dir=str(tmp_path))))
    app = create_app(p.services)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        doc_sites = None
        assert c.put("/api/model", json={"sites": []}).status_code == 401  # nobody: refused, nothing recorded
        login(c, p, "engineer", "ann")
        doc = c.get("/api/model").json()
        doc_sites = doc["sites"]
        doc_sites[0]["name"] = "renamed"
        r = c.put("/api/model", json={"sites": doc_sites}, headers={"X-Plantguard-User": "mallory"})  # ignored
        assert r.status_code == 200, r.text
    with TestClient(app, base_url="http://127.0.0.1", headers=auth_headers(p, "engineer", name="ci")) as c:
        r = c.put("/api/model", json={"sites": [{**doc_sites[0], "name": "again"}]})
        assert r.status_code == 200, r.text
    actors = [v["actor"] for v in p.services.model.versions()]
    assert actors[:2] == ["token:ci/t1", "user:ann"]
    p.stop()


def test_a_model_file_applied_at_start_records_the_os_user(tmp_path):
    import yaml

    from plantguard.config import load_config
    from plantguard.model_source import ModelFile
    from plantguard.runtime import Platform
    from plantguard.testing.factories import plant_dict

    f = tmp_path / "plant.yaml"
    f.write_text(yaml.safe_dump(plant_dict(1, data_dir=str(tmp_path / "data"))))
    p = Platform(load_config(f), model_file=ModelFile.of(f))
    newest = p.services.model.versions()[0]
    assert newest["origin"] == "file" and newest["actor"] == str(Actor.cli())
    p.stop()
