"""Analytics results for operators: live state (SPC, anomaly, RUL), stored derived series and events, and a
point's SPC report with its capability."""

from __future__ import annotations

import numpy as np

from plantguard.errors import InvalidInput, NotFound, PlantguardError
from plantguard.services._base import MAX_HISTORY_ROWS, Core, CoreService, _plain
from plantguard.store.protocols import AnalyticsStore, ReadingsStore
from plantguard.services.telemetry import MAX_BUCKETS, MAX_RAW_POINTS


class AnalyticsService(CoreService):
    """`processor` None: analytics are off on this platform (live state is empty; stored results still read)."""

    STORES = (ReadingsStore, AnalyticsStore)

    def __init__(self, core: Core, store, processor=None) -> None:
        super().__init__(core, store)
        self.processor = processor

    @property
    def enabled(self) -> bool:
        return self.processor is not None

    def live(self) -> dict:
        """SPC status and limits per point, anomaly state per point and asset, latest RUL per asset (in memory)."""
        if self.processor is None:
            return {"spc": {}, "anomaly": {}, "assets": {}}
        return self.processor.live()

    def stats(self) -> dict:
        """The processor's counters (metrics); empty when analytics are off."""
        return dict(self.processor.stats) if self.processor is not None else {}

    def series(self, key: str, start: int, end: int, *, buckets: int | None = None, agg: str = "max") -> dict:
        if end <= start:
            raise InvalidInput("end must be after start")
        width = None
        if buckets is not None:
            if not 1 <= buckets <= MAX_BUCKETS:
                raise InvalidInput(f"buckets must be between 1 and {MAX_BUCKETS}")
            width = max(1, -(-(end - start) // buckets))
        d = self.store.analytics_series(key, start, end, width=width, agg=agg)
        return {"key": key, "ts": d.ts, "value": d.value, "lower": d.lower, "upper": d.upper, "width_us": width}

    def events(self, **kw) -> list:
        return self.store.analytics_events(**kw)

    def spc_report(self, tag: str, start: int, end: int) -> dict:
        """A point's SPC: status and limits (live), the capability over [start, end) against its spec limits,
        and the violations recorded in that window."""
        from plantguard.analytics.spc.process_capability import capability

        pid = self.pid_of(tag)
        point = self._point_cfg(tag)
        spc = point.analytics.spc if point is not None and point.analytics is not None else None
        if spc is None:
            raise NotFound(f"point {tag!r} has no SPC configured (analytics.spc in the plant model)")
        live = self.live()["spc"].get(tag, {})
        out = {"tag": tag, "unit": point.unit, "settings": spc.model_dump(mode="json"), **live, "capability": None,
               "capability_error": None}
        if spc.lsl is not None or spc.usl is not None:
            raw = self.store.raw(pid, start, end, MAX_RAW_POINTS)
            keep = raw.quality == 0 if raw.quality is not None else np.ones(len(raw.ts), bool)
            gate = self._state_gate(tag, point)
            if gate is not None:
                # only readings taken while the machine was in an allowed state, as the live SPC judged them
                state_tag, allowed, lookback = gate
                st = self.store.raw(self.pid_of(state_tag), start - lookback, end, MAX_HISTORY_ROWS)
                pos = np.searchsorted(st.ts, raw.ts, "right") - 1
                state = np.where(pos >= 0, st.value[np.maximum(pos, 0)] if len(st.ts) else np.nan, np.nan)
                keep &= np.isin(state, allowed)
                out["only_when"] = list(point.analytics.only_when)
                out["readings_excluded_by_state"] = int((~np.isin(state, allowed)).sum())
            vals = raw.value[keep]
            try:
                cap = capability(vals, lsl=spc.lsl, usl=spc.usl)
                out["capability"] = _plain(cap)
            except PlantguardError as e:
                out["capability_error"] = str(e)  # e.g. too few readings in the window: a state, not a failure
        out["violations"] = [e.as_dict() for e in self.store.analytics_events(kind="spc", key=f"spc/{tag}", since=start, until=end, limit=1000)]
        return out
