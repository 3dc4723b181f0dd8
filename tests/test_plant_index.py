"""PlantIndex: every path of the model found in O(1), unknown paths None or NotFound with the expected format."""

import pytest

from plantguard.config import parse_config
from plantguard.domain.index import PlantIndex
from plantguard.errors import NotFound
from plantguard.testing.factories import plant_dict


def test_every_path_of_the_model_is_found():
    cfg = parse_config(plant_dict(5))
    idx = PlantIndex(cfg)
    walked = list(cfg.iter_points())
    assert [r.tag for r in idx.points()] == [t for t, *_ in walked] == idx.tags()
    for tag, s, a, ln, x, d, p in walked:
        ref = idx.point(tag)
        assert (ref.site, ref.area, ref.line, ref.asset, ref.device, ref.point) == (s, a, ln, x, d, p)
        dpath = tag.rsplit("/", 1)[0]
        assert idx.device(dpath).device is d
        assert idx.asset(dpath.rsplit("/", 1)[0]).asset is x
        assert idx.line("/".join(tag.split("/")[:3])).line is ln
        assert idx.site(s.id) is s
    assert len(idx) == len(walked) and walked[0][0] in idx


def test_unknown_paths():
    idx = PlantIndex(parse_config(plant_dict(1)))
    assert idx.point("nope") is None and idx.asset("a/b/c/d") is None and idx.line("x") is None
    with pytest.raises(NotFound, match="site/area/line/asset"):
        idx.require_asset("a/b/c/d")
    with pytest.raises(NotFound, match="site/area/line"):
        idx.require_line("a/b/c")
