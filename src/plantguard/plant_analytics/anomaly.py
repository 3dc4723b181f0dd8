"""Anomaly detection over the configured points: the bank (default wiring, robust_z) and per-point detectors; starts
and ends of anomalies become events and ANOMALY alarm conditions, scores derived series. A mixin of
AnalyticsProcessor."""

from __future__ import annotations

import logging

import numpy as np

from plantguard.domain.analytics import AnalyticsEvent, AnalyticsWrite
from plantguard.domain.model import where as describe
from plantguard.domain.readings import PointBatch
from plantguard.events import ConditionChange


log = logging.getLogger(__name__)


class AnomalyPart:
    def _run_rz(self, batch: PointBatch, mask: np.ndarray, out: AnalyticsWrite, alarm_changes) -> None:
        sel = self._select(self._rz_of, batch, mask)
        if sel is None:
            return
        slots, ts, v = sel
        res = self._st.rz.process(slots, v, ts)
        # starts and ends of anomalies: transitions of the decision within each slot's readings (in order)
        order = np.argsort(slots, kind="stable")
        s_o, a_o = slots[order], res.is_anomaly[order]
        prev = np.r_[False, a_o[:-1]]
        first = np.r_[True, s_o[1:] != s_o[:-1]]
        if len(self._rz_anom) < len(self._st.rz):
            self._rz_anom = np.concatenate([self._rz_anom, np.zeros(len(self._st.rz) - len(self._rz_anom), bool)])
        prev = np.where(first, self._rz_anom[s_o], prev)
        for j in np.flatnonzero(prev != a_o).tolist():
            i = int(order[j])
            slot = int(s_o[j])
            tag = self._rz_tag.get(slot)
            if tag is None:
                continue
            started = bool(a_o[j])
            self._anomaly_change(f"anomaly/{tag}", tag, started, int(ts[i]), float(v[i]), float(res.scores[i]),
                                 self._anom_cfg[slot], out, alarm_changes, shadow=bool(self._shadow[self.registry.pid(tag)]))
        last = np.flatnonzero(np.r_[s_o[1:] != s_o[:-1], True])
        self._rz_anom[s_o[last]] = a_o[last]
        rs, rt, rv = self._rz_thin.feed(slots, ts, res.scores)
        if len(rs):
            tags = self._rz_tag
            out.series.extend([f"anomaly/{tags[s_]}" for s_ in rs.tolist()], rt.tolist(), rv.tolist())

    def _anomaly_change(self, key: str, alarm_tag: str, started: bool, ts: int, value: float | None, score: float, cfg,
                        out: AnalyticsWrite, alarm_changes, *, shadow: bool, detail: dict | None = None) -> None:
        msg = (f"anomaly {describe(alarm_tag)}: score {score:.3f} at or above {cfg.threshold:g}" if started
               else f"anomaly over {describe(alarm_tag)}: score {score:.3f}")
        out.events.append(AnalyticsEvent(ts, "anomaly", key, "anomaly-start" if started else "anomaly-end", msg,
                                          {"score": score, "value": value, **(detail or {})}))
        out.states[key] = {"anomalous": started, "score": score, "since": ts, "threshold": cfg.threshold}
        if cfg.alarm and not shadow:
            alarm_changes.append(ConditionChange(f"{alarm_tag}:ANOMALY", started, ts, value if value is not None else score, msg))

    def _run_dets(self, batch: PointBatch, good: np.ndarray, out: AnalyticsWrite, alarm_changes) -> None:
        for pid_, tag in self._det_of.items():
            sel = np.flatnonzero((batch.pid == pid_) & good)
            if not len(sel):
                continue
            det = self._st.dets[tag][0]
            cfg = self._anom_cfg[tag]
            best = (-1.0, 0)
            for i in sel.tolist():
                t, x = int(batch.ts[i]), float(batch.value[i])
                d = det.update(x)
                if d.score > best[0]:
                    best = (d.score, t)
                if d.is_anomaly != self._det_anom[tag]:
                    self._det_anom[tag] = d.is_anomaly
                    self._anomaly_change(f"anomaly/{tag}", tag, d.is_anomaly, t, x, d.score, cfg, out, alarm_changes,
                                         shadow=bool(self._shadow[pid_]))
            out.series.add(f"anomaly/{tag}", best[1], best[0])
