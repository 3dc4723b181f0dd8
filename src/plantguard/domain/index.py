"""Lookups in the plant model by path, in O(1): the index is built once per model version.

    idx = PlantIndex(cfg)
    ref = idx.point("site1/packaging/line-1/pump/plc/flow")     # PointRef(tag, site, area, line, asset, device, point)
    idx.device("site1/packaging/line-1/pump/plc"); idx.asset("site1/packaging/line-1/pump")
    idx.line("site1/packaging/line-1"); idx.site("site1")
    for ref in idx.points(): ...                                 # model order

Every lookup returns None for an unknown path; `require_*` raise NotFound with the path format in the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plantguard.domain.fields import TAG_SEP
from plantguard.domain.model import Area, Asset, Device, Line, PlantConfig, Point, Site
from plantguard.errors import NotFound


@dataclass(frozen=True)
class PointRef:
    tag: str
    site: Site
    area: Area
    line: Line
    asset: Asset
    device: Device
    point: Point


@dataclass(frozen=True)
class AssetRef:
    path: str
    site: Site
    area: Area
    line: Line
    asset: Asset


@dataclass(frozen=True)
class LineRef:
    path: str
    site: Site
    area: Area
    line: Line


@dataclass(frozen=True)
class DeviceRef:
    path: str
    site: Site
    area: Area
    line: Line
    asset: Asset
    device: Device


class PlantIndex:
    def __init__(self, cfg: PlantConfig) -> None:
        self.cfg = cfg
        self._points: dict[str, PointRef] = {}
        self._devices: dict[str, DeviceRef] = {}
        self._assets: dict[str, AssetRef] = {}
        self._lines: dict[str, LineRef] = {}
        self._sites: dict[str, Site] = {}
        for s in cfg.sites:
            self._sites[s.id] = s
            for a in s.areas:
                for ln in a.lines:
                    lp = TAG_SEP.join((s.id, a.id, ln.id))
                    self._lines[lp] = LineRef(lp, s, a, ln)
                    for x in ln.assets:
                        xp = f"{lp}{TAG_SEP}{x.id}"
                        self._assets[xp] = AssetRef(xp, s, a, ln, x)
                        for d in x.devices:
                            dp = f"{xp}{TAG_SEP}{d.id}"
                            self._devices[dp] = DeviceRef(dp, s, a, ln, x, d)
                            for p in d.points:
                                tag = f"{dp}{TAG_SEP}{p.id}"
                                self._points[tag] = PointRef(tag, s, a, ln, x, d, p)

    # -- lookups --------------------------------------------------------------------------------------------
    def point(self, tag: str) -> PointRef | None:
        return self._points.get(tag)

    def device(self, path: str) -> DeviceRef | None:
        return self._devices.get(path)

    def asset(self, path: str) -> AssetRef | None:
        return self._assets.get(path)

    def line(self, path: str) -> LineRef | None:
        return self._lines.get(path)

    def site(self, site_id: str) -> Site | None:
        return self._sites.get(site_id)

    def require_asset(self, path: str) -> AssetRef:
        ref = self._assets.get(path.strip(TAG_SEP))
        if ref is None:
            raise NotFound(f"no asset {path!r} (give 'site/area/line/asset')")
        return ref

    def require_line(self, path: str) -> LineRef:
        ref = self._lines.get(path.strip(TAG_SEP))
        if ref is None:
            raise NotFound(f"no line {path!r} (give 'site/area/line')")
        return ref

    # -- iteration ------------------------------------------------------------------------------------------
    def points(self):
        return iter(self._points.values())

    def assets(self):
        return iter(self._assets.values())

    def devices(self):
        return iter(self._devices.values())

    def lines(self):
        return iter(self._lines.values())

    def tags(self) -> list[str]:
        return list(self._points)

    def __len__(self) -> int:
        return len(self._points)

    def __contains__(self, tag: Any) -> bool:
        return tag in self._points
