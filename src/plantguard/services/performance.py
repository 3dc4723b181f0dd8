"""Performance of lines and assets: OEE with the six big losses, maintenance and quality KPIs."""

from __future__ import annotations

import numpy as np

from plantguard.errors import InvalidInput, NotFound
from plantguard.services._base import CoreService, _plain
from plantguard.store.protocols import ReadingsStore

MAX_OEE_WINDOW_US = 93 * 86400 * 1_000_000


class PerformanceService(CoreService):
    STORES = (ReadingsStore,)

    def oee(self, line_path: str, start: int, end: int, by: str = "shift") -> dict:
        """OEE of a line per shift, day, hour or for the whole window ('total'), with the six big losses."""
        from dataclasses import asdict

        from plantguard.analytics.oee import MachineData, OeeConfig, combine, line_oee_by
        from plantguard.analytics.shifts import Period, ShiftCalendar

        if end <= start:
            raise InvalidInput("end must be after start")
        if end - start > MAX_OEE_WINDOW_US:
            raise InvalidInput("an OEE window is at most 93 days; ask for several")
        site, ln = self._line_cfg(line_path)
        o = ln.oee
        if o is None:
            raise NotFound(f"line {line_path!r} has no OEE configured (oee in the plant model)")
        cfg = OeeConfig(categories=dict(o.state_categories), ideal_rate_per_h=o.ideal_rate_per_h, ideal_cycle_s=o.ideal_cycle_s,
                        max_gap_s=o.max_gap_s, minor_stop_max_s=o.minor_stop_max_s, startup_window_s=o.startup_window_s,
                        counter_modulus=o.counter_modulus, min_coverage=o.min_coverage)
        if by == "total":
            periods = [Period("total", start, end)]
        else:
            cal = ShiftCalendar(site.timezone, [(x.name, x.start, x.end) for x in site.shifts], day_start=site.day_start)
            periods = cal.periods(start, end, by=by)
        lookback = int((o.max_gap_s or 86400) * 1e6)
        machines, names = [], []
        counting = len(ln.assets) - 1
        for i, asset in enumerate(ln.assets):
            paths = {p.id: f"{line_path}/{asset.id}/{d.id}/{p.id}" for d in asset.devices for p in d.points}
            if o.state_point not in paths or o.good_point not in paths:
                continue
            if asset.id == o.counting_asset:
                counting = len(machines)
            elif o.counting_asset is None and i == len(ln.assets) - 1:
                counting = len(machines)
            bad = self._history(paths[o.bad_point], start - lookback, end) if o.bad_point in paths else (np.zeros(0, np.int64), np.zeros(0))
            machines.append(MachineData(self._history(paths[o.state_point], start - lookback, end),
                                        self._history(paths[o.good_point], start - lookback, end), bad))
            names.append(asset.id)
        if not machines:
            raise NotFound(f"no asset of line {line_path!r} has the points {o.state_point!r} and {o.good_point!r}")
        counting = min(counting, len(machines) - 1)
        results = line_oee_by(periods, machines, cfg, counting_machine=counting)
        total = combine(results, label="total", min_coverage=o.min_coverage) if len(results) > 1 else results[0]
        return {"line": line_path, "by": by, "timezone": site.timezone, "counting_asset": names[counting],
                "ideal_rate_per_h": 3600.0 / cfg.cycle_s, "periods": [_plain(asdict(r)) for r in results],
                "total": _plain(asdict(total))}

    def maintenance_kpis(self, asset_path: str, start: int, end: int) -> dict:
        """MTBF, MTTR, availability from the asset's state point; defect rate and first-pass yield from its counters."""
        from dataclasses import asdict

        from plantguard.analytics.kpi import maintenance_kpis, quality_kpis_from_counters

        if end <= start:
            raise InvalidInput("end must be after start")
        if end - start > MAX_OEE_WINDOW_US:
            raise InvalidInput("a KPI window is at most 93 days; ask for several")
        line_path, _, asset_id = asset_path.rpartition("/")
        _site, ln = self._line_cfg(line_path)
        asset = next((a for a in ln.assets if a.id == asset_id), None)
        if asset is None:
            raise NotFound(f"no asset {asset_path!r}")
        o = ln.oee
        if o is None:
            raise NotFound(f"line {line_path!r} has no OEE configured: its state categories define failures")
        paths = {p.id: f"{asset_path}/{d.id}/{p.id}" for d in asset.devices for p in d.points}
        if o.state_point not in paths:
            raise NotFound(f"asset {asset_path!r} has no state point {o.state_point!r}")
        lookback = int((o.max_gap_s or 86400) * 1e6)
        states = self._history(paths[o.state_point], start - lookback, end)
        m = maintenance_kpis(states, start, end, dict(o.state_categories), max_gap_s=o.max_gap_s, min_failure_s=o.min_failure_s)
        out = {"asset": asset_path, "maintenance": _plain(asdict(m)), "quality": None}
        if o.good_point in paths and o.bad_point in paths:
            q = quality_kpis_from_counters(self._history(paths[o.good_point], start - lookback, end),
                                           self._history(paths[o.bad_point], start - lookback, end), start, end,
                                           counter_modulus=o.counter_modulus)
            out["quality"] = _plain(asdict(q))
        return out
