"""SPC over the configured points: the bank's rule violations become events (one per episode), the alarm hysteresis
(a 64-bit mask of recent violations per point) raises and clears SPC alarms, EWMA statistics are thinned into
derived series and status and limits into state. A mixin of AnalyticsProcessor."""

from __future__ import annotations

import logging

import numpy as np

from plantguard.analytics.spc.bank import CHARTS, IND
from plantguard.analytics.spc.rules import RULE_NAMES
from plantguard.domain.analytics import AnalyticsEvent, AnalyticsWrite
from plantguard.domain.model import where as describe
from plantguard.domain.readings import PointBatch
from plantguard.events import ConditionChange

log = logging.getLogger(__name__)

# rule codes of violations: Nelson rules 1..8, then the other charts' limits
_CHART_CODE = np.array([0, 9, 10, 11, 12], np.int64)  # individuals (rule number used), moving_range, ewma, cusum up/low
_N_CODES = 13
_CODE_OF = {**{f"nelson-{i}": (i,) for i in range(1, 9)}, "moving_range": (9,), "ewma": (10,), "cusum": (11, 12)}


class SpcPart:
    def _run_spc(self, batch: PointBatch, mask: np.ndarray, out: AnalyticsWrite, alarm_changes) -> None:
        """Vectorised over slots: Python runs per recorded event and per slot whose alarm or status changed."""
        # Long on purpose: one pass over the batch's arrays on the writer's hot path; split, each part would take and
        # return the same dozen arrays (measured in bench/analytics_throughput.py).
        sel = self._select(self._spc_of, batch, mask)
        if sel is None:
            return
        slots, ts, v = sel
        bank = self._st.spc
        res = bank.process(slots, ts, v)
        self._spc_grow(len(bank))
        n_ev = len(res.event_slot)
        last = np.full(len(bank), -1, np.int64)
        np.maximum.at(last, slots, res.index)
        touched = np.flatnonzero(last >= 0)
        if n_ev:
            ev_slot, ev_index = res.event_slot.astype(np.int64), res.event_index.astype(np.int64)
            code = np.where(res.event_chart == IND, res.event_rule, _CHART_CODE[res.event_chart]).astype(np.int64)
            # one event per episode: a rule that also fired at the slot's previous point continues an episode
            order = np.lexsort((ev_index, code, ev_slot))
            es, ec, ei = ev_slot[order], code[order], ev_index[order]
            same = np.r_[False, (es[1:] == es[:-1]) & (ec[1:] == ec[:-1])]
            prev = np.where(same, np.r_[np.int64(-2), ei[:-1]], self._spc_prev[es, ec])
            new_episode = ei - prev != 1
            self._spc_prev[es, ec] = ei  # ascending within each group: the last write is the newest index
            for k in np.flatnonzero(new_episode).tolist():
                j = int(order[k])
                slot, chart, rule = int(es[k]), int(res.event_chart[j]), int(res.event_rule[j])
                tag = self._spc_tag.get(slot)
                if tag is None:
                    continue
                name, rid = (RULE_NAMES[rule], f"nelson-{rule}") if chart == IND else (f"{CHARTS[chart]} beyond its limit", CHARTS[chart])
                pos, span = int(res.event_pos[j]), int(res.event_span[j])
                first = pos - span + 1
                # batches arrive sorted by point, so a span inside this batch is one slice of it
                first_ts = int(ts[first]) if first >= 0 and slots[first] == slot else None
                out.events.append(AnalyticsEvent(int(res.event_ts[j]), "spc", f"spc/{tag}", rid, name,
                                                  {"value": float(v[pos]), "span": span, "first_ts": first_ts,
                                                   "index": int(ei[k]), "chart": CHARTS[chart]}))
                self._spc_last_rule[slot] = f"{rid} {name}"
            # the alarm counts readings with a violation of an alarm rule among the last clear_after
            counted = ((self._spc_rulebits[ev_slot] >> code) & 1).astype(bool)
            cs, ci = ev_slot[counted], ev_index[counted]
        else:
            cs = ci = np.zeros(0, np.int64)
        t_sl = touched
        shift = last[t_sl] - self._spc_vidx[t_sl]
        m = self._spc_mask[t_sl]
        m = np.where(shift >= 64, np.uint64(0), m << np.minimum(np.maximum(shift, 0), 63).astype(np.uint64))
        self._spc_mask[t_sl] = m
        self._spc_vidx[t_sl] = np.maximum(self._spc_vidx[t_sl], last[t_sl])
        if len(cs):
            age = self._spc_vidx[cs] - ci
            ok = (age >= 0) & (age < 64)
            np.bitwise_or.at(self._spc_mask, cs[ok], np.left_shift(np.uint64(1), age[ok].astype(np.uint64)))
        window = np.left_shift(np.uint64(1), self._spc_clear[t_sl].astype(np.uint64)) - np.uint64(1)
        count = np.bitwise_count(self._spc_mask[t_sl] & window)
        was = self._spc_alarm[t_sl]
        now_active = np.where(was, count > 0, count >= self._spc_min[t_sl])
        st_last = np.full(len(bank), -1, np.int64)
        st_last[slots] = res.state  # fancy assignment keeps each slot's last reading
        status_changed = (st_last[t_sl] >= 0) & (st_last[t_sl] != self._spc_status[t_sl])
        self._spc_status[t_sl] = np.where(st_last[t_sl] >= 0, st_last[t_sl], self._spc_status[t_sl])
        self._spc_dirty[t_sl[status_changed]] = True
        flip = np.flatnonzero(now_active != was)
        if len(flip):
            ts_last = np.zeros(len(bank), np.int64)
            ts_last[slots] = ts
            v_last = np.zeros(len(bank))
            v_last[slots] = v
            for slot in t_sl[flip].tolist():
                active = not self._spc_alarm[slot]
                self._spc_alarm[slot] = active
                self._spc_dirty[slot] = True
                tag = self._spc_tag.get(slot)
                if tag is None:
                    continue
                cfg = self._spc_cfg[slot]
                if cfg.alarm and not self._shadow[self.registry.pid(tag)]:
                    msg = (f"SPC {describe(tag)}: {self._spc_last_rule.get(slot, 'rule violations')} (process out of statistical control)" if active
                           else f"SPC {describe(tag)}: no alarm-rule violation for {cfg.clear_after} readings")
                    alarm_changes.append(ConditionChange(f"{tag}:SPC", active, int(ts_last[slot]), float(v_last[slot]), msg))
        # status and limits as state: at most once per key and store interval (statuses can flip every reading)
        t_max = int(ts.max())
        if t_max - self._spc_state_at >= self.store_interval and self._spc_dirty.any():
            self._spc_state_at = t_max
            for slot in np.flatnonzero(self._spc_dirty).tolist():
                tag = self._spc_tag.get(slot)
                if tag is not None:
                    out.states[f"spc/{tag}"] = self.spc_state(slot)
            self._spc_dirty[:] = False
        # EWMA statistic as a derived series (the highest of each interval)
        rs, rt, rv = self._spc_thin.feed(slots, ts, res.ewma)
        if len(rs):
            keys = self._spc_ewma_keys
            out.series.extend([keys[s_] for s_ in rs.tolist()], rt.tolist(), rv.tolist())

    def _spc_grow(self, n: int) -> None:
        old = len(self._spc_mask)
        if n <= old:
            return
        k = n - old
        self._spc_mask = np.concatenate([self._spc_mask, np.zeros(k, np.uint64)])
        self._spc_vidx = np.concatenate([self._spc_vidx, np.full(k, -1, np.int64)])
        self._spc_alarm = np.concatenate([self._spc_alarm, np.zeros(k, bool)])
        self._spc_status = np.concatenate([self._spc_status, np.full(k, -1, np.int16)])
        self._spc_dirty = np.concatenate([self._spc_dirty, np.zeros(k, bool)])
        self._spc_rulebits = np.concatenate([self._spc_rulebits, np.zeros(k, np.int64)])
        self._spc_min = np.concatenate([self._spc_min, np.full(k, 64, np.int64)])
        self._spc_clear = np.concatenate([self._spc_clear, np.full(k, 16, np.int64)])
        self._spc_prev = np.concatenate([self._spc_prev, np.full((k, _N_CODES), -2, np.int64)])
        self._spc_ewma_keys += [None] * k

    def spc_state(self, slot: int) -> dict:
        s = self._st.spc.state(slot)
        lim = s.limits
        # The status must never contradict the violations next to it: 'in_control' only when no rule fired in
        # the last clear_after readings and the SPC alarm is not active (the bank's own state is the last
        # reading's alone).
        status = s.status
        window = int(self._spc_clear[slot]) if slot < len(self._spc_clear) else 16
        vidx = int(self._spc_vidx[slot]) if slot < len(self._spc_vidx) else -1
        recent = int(((self._spc_prev[slot] >= 0) & (self._spc_prev[slot] > vidx - window)).sum()) if slot < len(self._spc_prev) else 0
        alarm = bool(self._spc_alarm[slot]) if slot < len(self._spc_alarm) else False
        if status == "in_control" and (recent or alarm):
            status = "out_of_control"
        d = {"status": status, "last_reading_status": s.status, "alarm_active": alarm,
             "rules_fired_recently": recent, "recent_window": window,
             "n_points": s.n_points, "n_missing": s.n_missing, "n_out_of_order": s.n_out_of_order,
             "collected": s.collected, "baseline": self._spc_cfg[slot].baseline if slot in self._spc_cfg else None}
        if lim is not None:
            d["limits"] = {"center": lim.center, "ucl": lim.ucl, "lcl": lim.lcl, "sigma": lim.sigma,
                           "sigma_method": lim.sigma_method, "n_used": lim.n_used, "removed": len(lim.removed),
                           "mr_ucl": lim.spread_ucl}
            c = self._spc_cfg.get(slot)
            if c is not None:
                lam, L = c.ewma_lambda, c.ewma_l
                half = L * lim.sigma * (lam / (2 - lam)) ** 0.5
                d["ewma_limits"] = {"center": lim.center, "ucl": lim.center + half, "lcl": lim.center - half}
                d["cusum"] = {"k": c.cusum_k, "h": c.cusum_h, "upper": s.cusum_upper, "lower": s.cusum_lower}
        return d
