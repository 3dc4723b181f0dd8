"""Asset analytics: the multivariate detector over an asset's points (judged when its slowest point reports) and the
remaining-useful-life trend with its predictive alert. A mixin of AnalyticsProcessor."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import numpy as np

from plantguard.domain.analytics import AnalyticsEvent, AnalyticsWrite
from plantguard.domain.readings import PointBatch
from plantguard.events import ConditionChange
from plantguard.timeutil import iso

from plantguard.plant_analytics.common import RUL_CLEAR_FACTOR, _S, _Cfg, _finite, _h

if TYPE_CHECKING:
    from plantguard.plant_analytics.processor import _Asset

log = logging.getLogger(__name__)


class AssetPart:
    def _run_assets(self, batch: PointBatch, good: np.ndarray, out: AnalyticsWrite, alarm_changes) -> None:
        pids = np.fromiter(self._asset_of_pid.keys(), np.int64)
        sel = np.flatnonzero(np.isin(batch.pid, pids) & good)
        if not len(sel):
            return
        sel = sel[np.argsort(batch.ts[sel], kind="stable")]  # across points: time order
        best: dict[str, tuple[float, int]] = {}
        due: list[_Asset] = []
        ts_sel = batch.ts[sel]
        for j, i in enumerate(sel.tolist()):
            p, t, x = int(batch.pid[i]), int(batch.ts[i]), float(batch.value[i])
            for ax in self._asset_of_pid[p]:
                if ax.mv is not None and p in ax.mv_pids:
                    ax.mv_last[p] = (t, x)
                    if p == ax.mv_clock:
                        due.append(ax)
                if ax.rul is not None and p == ax.rul_pid:
                    self._asset_rul(ax, t, x, out, alarm_changes)
            # evaluate once every reading stamped with this time is held, so sensors sampled together are
            # judged together
            if due and (j + 1 == len(sel) or ts_sel[j + 1] != t):
                for ax in due:
                    self._asset_mv(ax, t, best, out, alarm_changes)
                due.clear()
        for key, (score, t) in best.items():
            out.series.add(f"anomaly/{key}", t, score)

    def _asset_mv(self, ax: _Asset, t: int, best: dict, out: AnalyticsWrite, alarm_changes) -> None:
        feats = {}
        for p, name, period in zip(ax.mv_pids, ax.mv_names, ax.mv_period):
            held = ax.mv_last.get(p)
            # a value older than 3 of its periods is missing, not carried forward forever
            feats[name] = held[1] if held is not None and t - held[0] <= 3 * period else None
        d = ax.mv.update(feats)
        if d.score > best.get(ax.key, (-1.0, 0))[0]:
            best[ax.key] = (d.score, t)
        if d.is_anomaly != ax.mv_active:
            ax.mv_active = d.is_anomaly
            cfg = _Cfg(ax.mv.threshold, bool(ax.mv_settings.get("alarm", True)))
            contrib = {}
            explain = getattr(ax.mv.detector, "contributions", None)
            if callable(explain):
                try:
                    contrib = {"contributions": explain(feats)}
                except Exception:  # noqa: BLE001 - an explanation is a bonus, never a failure
                    contrib = {}
            self._anomaly_change(f"anomaly/{ax.key}", ax.key, d.is_anomaly, t, None, d.score, cfg, out, alarm_changes,
                                 shadow=ax.shadow, detail={"features": feats, **contrib})

    def _asset_rul(self, ax: _Asset, t: int, x: float, out: AnalyticsWrite, alarm_changes) -> None:
        est = ax.rul.update(t / _S, x)
        alert = bool(est.alert(ax.rul_lead_s))
        if ax.rul_alert and not alert and est.state == "degrading" and not (
                np.isfinite(est.lower) and est.lower >= RUL_CLEAR_FACTOR * ax.rul_lead_s):
            # hysteresis: a bound hovering around the lead time, or a fit briefly without a finite life just after
            # the onset, must not chatter the alarm; it clears when the bound is well above the lead time or the
            # asset is healthy again (part replaced)
            alert = True
        d = dataclasses.asdict(est)
        d["lead_time_s"] = ax.rul_lead_s
        d["alert"] = alert
        d["ts"] = t
        ax.rul_last = d
        refresh = t - ax.rul_last_row >= self.rul_interval
        if refresh or alert != ax.rul_alert:
            ax.rul_last_row = t
            out.states[f"rul/{ax.key}"] = d
            if est.median is not None and np.isfinite(est.median):
                out.series.add(f"rul/{ax.key}", t, est.median, _finite(est.lower), _finite(est.upper))
        asset_name = ax.key.rsplit("/", 1)[-1]
        # the alarm's value is the lower bound of the remaining life in hours, next to the lead time in hours
        lower_h = float(est.lower) / 3600 if est.lower is not None and np.isfinite(est.lower) else None
        if alert != ax.rul_alert:
            ax.rul_alert = alert
            if alert:
                msg = (f"{asset_name}: predicted failure in {_h(est.median)} (interval {_h(est.lower)} to {_h(est.upper)}), "
                       f"lower bound below the lead time {_h(ax.rul_lead_s)}; estimate as of {iso(t)}")
            else:
                msg = f"{asset_name}: remaining life back above the lead time {_h(ax.rul_lead_s)}"
            out.events.append(AnalyticsEvent(t, "rul", f"rul/{ax.key}", "rul-alert" if alert else "rul-clear", msg, d))
            if ax.rul_settings.get("alarm", True) and not ax.shadow:
                alarm_changes.append(ConditionChange(f"{ax.key}:RUL", alert, t, lower_h, msg))
        elif alert and refresh and ax.rul_settings.get("alarm", True) and not ax.shadow:
            # the standing alarm follows the live estimate, with the time it was made
            msg = (f"{asset_name}: predicted failure in {_h(est.median)} (interval {_h(est.lower)} to {_h(est.upper)}), "
                   f"lower bound below the lead time {_h(ax.rul_lead_s)}; estimate as of {iso(t)}")
            alarm_changes.append(ConditionChange(f"{ax.key}:RUL", True, t, lower_h, msg))
