"""SpcBank: individuals-chart (I-MR) limits, EWMA, CUSUM and the Nelson rules for many series at once.

    bank = SpcBank()
    s = bank.add(SlotSettings(baseline=25))          # phase I from the slot's first 25 valid readings
    res = bank.process(slots, ts_us, values)         # int64, int64 microseconds, float64; any interleaving
    res.state, res.ewma                              # one entry per reading
    res.event_slot, res.event_rule, ...              # one entry per violation

A batch is split by `_lockstep.rounds` so that each round holds at most one reading per slot, and every round is
a handful of numpy operations over all its slots; per-slot state is a row of fixed-size arrays (about 200 bytes).
Rule history is kept as 15-bit masks of the last points (above/below center, beyond 1 and 2 sigma, within 1
sigma, rising/falling), so every rule is a mask test. Baseline readings are held per slot only while collecting.

Per reading the results match the reference charts (IndividualsMR + EWMA + CUSUM with the same settings) exactly:
the same phase I code, the same arithmetic, the same rules. Timestamps must increase per slot: a reading with
ts <= the slot's last accepted ts is skipped and counted. NaN is skipped, counted, and breaks the moving range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from plantguard.analytics._lockstep import rounds
from plantguard.analytics.spc.charts import STATES
from plantguard.analytics.spc.constants import D2_MR, D4_MR
from plantguard.analytics.spc.limits import Limits, individuals_limits, phase1_rows
from plantguard.analytics.spc.rules import RULE_NAMES, RuleSet
from plantguard.errors import InvalidInput, NotFound

# state codes of SpcBatchResult.state (index into charts.STATES)
INSUFFICIENT_DATA, IN_CONTROL, OUT_OF_CONTROL, NO_VARIATION, SKIPPED = range(5)
# chart codes of SpcBatchResult.event_chart
CHARTS = ("individuals", "moving_range", "ewma", "cusum_upper", "cusum_lower")
IND, MR, EWMA_C, CUP, CLO = range(5)

_M = {n: (1 << n) - 1 for n in (3, 5, 8, 9, 13, 15)}
_MIN64 = np.iinfo(np.int64).min


@dataclass(frozen=True)
class SlotSettings:
    """Per-slot chart settings. The individuals chart always uses 3-sigma limits (the Nelson zones assume it);
    `L` is the EWMA limit width. headstart, k and h are in sigma units."""
    baseline: int = 25
    lam: float = 0.2
    L: float = 3.0
    k: float = 0.5
    h: float = 5.0
    headstart: float = 0.0
    reset_on_signal: bool = False
    rules: Any = "nelson"
    max_iter: int = 10

    def validate(self) -> RuleSet:
        if not (isinstance(self.baseline, int) and self.baseline >= 2):
            raise InvalidInput(f"baseline must be an integer >= 2, got {self.baseline!r}")
        if not 0 < self.lam <= 1:
            raise InvalidInput(f"lam must be in (0, 1], got {self.lam!r}")
        if not (self.L > 0 and self.k >= 0 and self.h > 0 and 0 <= self.headstart < self.h):
            raise InvalidInput("need L > 0, k >= 0, h > 0 and 0 <= headstart < h")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 0):
            raise InvalidInput(f"max_iter must be an integer >= 0, got {self.max_iter!r}")
        return RuleSet.of(self.rules)


@dataclass(frozen=True)
class SpcBatchResult:
    """Columnar results. Per reading: `state` (code into STATES), `ewma`, `cusum_upper`, `cusum_lower` (NaN when
    not plotted), `index` (the slot's point index, -1 when skipped). Per violation: position in the batch, slot,
    ts, point index, rule number (1..8; 1 = beyond limits for the MR, EWMA and CUSUM charts) and chart code
    (into CHARTS); the points involved are the `span` points ending at `event_index`."""
    state: np.ndarray
    index: np.ndarray
    ewma: np.ndarray
    cusum_upper: np.ndarray
    cusum_lower: np.ndarray
    event_pos: np.ndarray
    event_slot: np.ndarray
    event_ts: np.ndarray
    event_index: np.ndarray
    event_rule: np.ndarray
    event_chart: np.ndarray
    event_span: np.ndarray

    def state_names(self) -> list[str]:
        return [STATES[c] for c in self.state]

    def events(self) -> list[dict]:
        """Events as dicts (for logs and tests; use the arrays on hot paths)."""
        return [{"slot": int(s), "ts": int(t), "index": int(i), "rule": int(r), "chart": CHARTS[c],
                 "name": RULE_NAMES[r] if c == IND else "beyond_limits", "span": int(n)}
                for s, t, i, r, c, n in zip(self.event_slot, self.event_ts, self.event_index, self.event_rule,
                                            self.event_chart, self.event_span, strict=True)]


@dataclass(frozen=True)
class SlotState:
    status: str                   # insufficient_data | in_control | out_of_control | no_variation
    limits: Limits | None
    n_points: int
    n_missing: int
    n_out_of_order: int
    collected: int                # baseline readings held (while collecting)
    ewma: float
    cusum_upper: float
    cusum_lower: float


_F64 = ("center", "sigma", "mrbar", "mr_ucl", "lam", "ewma_half", "ewma", "k", "h", "head", "cp", "cm", "prev")
_I64 = ("last_ts", "npts", "nmiss", "nstale")
_U32 = ("mA", "mB", "mI", "mD", "mP2", "mN2", "mP1", "mN1", "mW")
_I32 = ("base_n", "max_iter", "n_used", "iters", "baseline")
_U8 = ("rules", "run", "phase", "has_prev", "has_zprev", "reset", "last_state")


class SpcBank:
    """Vectorised SPC for many series; picklable as a whole for checkpoints."""

    def __init__(self, capacity: int = 64):
        self._n = 0
        self._cap = max(1, int(capacity))
        for name in _F64:
            setattr(self, "_" + name, np.zeros(self._cap))
        for name in _I64:
            setattr(self, "_" + name, np.zeros(self._cap, dtype=np.int64))
        for name in _U32:
            setattr(self, "_" + name, np.zeros(self._cap, dtype=np.uint32))
        for name in _I32:
            setattr(self, "_" + name, np.zeros(self._cap, dtype=np.int32))
        for name in _U8:
            setattr(self, "_" + name, np.zeros(self._cap, dtype=np.uint8))
        self._pool: dict[int, tuple[np.ndarray, np.ndarray]] = {}    # width -> (values, gaps) while collecting
        self._pool_row = np.full(self._cap, -1, dtype=np.int32)
        self._pool_free: dict[int, list[int]] = {}
        self._removed: dict[int, tuple[int, ...]] = {}            # only slots whose phase I removed points

    def __len__(self) -> int:
        return self._n

    # -- slots -------------------------------------------------------------------------------------------------
    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, 2 * self._cap)
        for name in _F64 + _I64 + _U32 + _I32 + _U8 + ("pool_row",):
            a = getattr(self, "_" + name)
            b = np.zeros(cap, dtype=a.dtype) if name != "pool_row" else np.full(cap, -1, dtype=a.dtype)
            b[:len(a)] = a
            setattr(self, "_" + name, b)
        self._cap = cap

    def add(self, settings: SlotSettings | None = None) -> int:
        """A new slot collecting its baseline; returns its number."""
        st = settings or SlotSettings()
        rs = st.validate()
        s = self._n
        self._grow(s + 1)
        self._n += 1
        self._lam[s], self._k[s], self._h[s], self._head[s] = st.lam, st.k, st.h, st.headstart
        self._ewma_half[s] = st.L  # multiplied by sigma * sqrt(lam / (2 - lam)) once sigma is known
        self._rules[s], self._run[s], self._reset[s] = rs.mask, rs.run_length, st.reset_on_signal
        self._baseline[s], self._max_iter[s] = st.baseline, st.max_iter
        self._last_ts[s] = _MIN64
        self._phase[s] = 0
        self._take_row(s)
        return s

    # -- moving slots between banks (a partition's state taken over by another worker) ---------------------
    def take(self, slots) -> "SpcBank":
        """A new bank holding copies of these slots (settings, limits, baselines being collected, run state)."""
        out = SpcBank(capacity=max(1, len(slots)))
        out.absorb(self, slots)
        return out

    def absorb(self, other: "SpcBank", slots=None) -> list[int]:
        """Appends copies of `other`'s slots (all by default); returns their numbers here."""
        src = range(len(other)) if slots is None else [other._check(s) for s in slots]
        out = []
        for i in src:
            s = self._n
            self._grow(s + 1)
            self._n += 1
            for name in _F64 + _I64 + _U32 + _I32 + _U8:
                getattr(self, "_" + name)[s] = getattr(other, "_" + name)[i]
            r = int(other._pool_row[i])
            if r >= 0:  # still collecting its baseline: the values collected so far come along
                base_n = self._base_n[s]
                self._take_row(s)
                self._base_n[s] = base_n
                w = int(self._baseline[s])
                vals, gaps = self._pool[w]
                vals[self._pool_row[s]] = other._pool[w][0][r]
                gaps[self._pool_row[s]] = other._pool[w][1][r]
            if i in other._removed:
                self._removed[s] = other._removed[i]
            out.append(s)
        return out

    def _take_row(self, s: int) -> None:
        w = int(self._baseline[s])
        free = self._pool_free.setdefault(w, [])
        if not free:
            vals, gaps = self._pool.get(w, (np.zeros((0, w)), np.zeros((0, w), dtype=bool)))
            old = len(vals)
            new = max(8, 2 * old)
            self._pool[w] = (np.vstack([vals, np.zeros((new - old, w))]),
                             np.vstack([gaps, np.zeros((new - old, w), dtype=bool)]))
            free.extend(range(new - 1, old - 1, -1))
        self._pool_row[s] = free.pop()
        self._base_n[s] = 0

    def _release_row(self, s: int) -> None:
        r = int(self._pool_row[s])
        if r >= 0:
            self._pool_free[int(self._baseline[s])].append(r)
            self._pool_row[s] = -1
            # shrink a pool nobody uses any more, so established banks hold no baseline memory
            w = int(self._baseline[s])
            if len(self._pool_free[w]) == len(self._pool[w][0]):
                del self._pool[w], self._pool_free[w]

    def _check(self, slot: int) -> int:
        if not (0 <= int(slot) < self._n):
            raise NotFound(f"no SPC slot {slot!r}")
        return int(slot)

    def set_limits(self, slot: int, limits: Limits) -> None:
        """Use these (individuals-chart) limits from now on; drops any baseline being collected."""
        s = self._check(slot)
        if limits.subgroup_size != 1:
            raise InvalidInput("the bank runs individuals charts: limits must have subgroup_size 1")
        self._release_row(s)
        mrbar = limits.spread_center if math.isfinite(limits.spread_center) else limits.sigma * D2_MR
        self._establish(np.array([s]), np.array([limits.center]), np.array([mrbar]),
                        np.array([limits.n_used]), np.array([limits.iterations]))
        self._sigma[s] = limits.sigma
        self._mr_ucl[s] = limits.spread_ucl if math.isfinite(limits.spread_ucl) else D4_MR * limits.sigma * D2_MR
        if limits.removed:
            self._removed[s] = tuple(limits.removed)
        else:
            self._removed.pop(s, None)

    def _establish(self, s: np.ndarray, center, mrbar, n_used, iters) -> None:
        sigma = mrbar / D2_MR
        self._center[s], self._sigma[s], self._mrbar[s], self._mr_ucl[s] = center, sigma, mrbar, D4_MR * mrbar
        lam = self._lam[s]
        self._ewma_half[s] = self._ewma_half[s] * sigma * np.sqrt(lam / (2.0 - lam))
        self._ewma[s] = center
        self._cp[s] = self._cm[s] = self._head[s]
        for name in _U32:
            getattr(self, "_" + name)[s] = 0
        self._has_zprev[s] = 0
        self._phase[s] = 1
        self._last_state[s] = np.where(sigma == 0.0, NO_VARIATION, IN_CONTROL)
        self._n_used[s], self._iters[s] = n_used, iters
        self._base_n[s] = 0

    def state(self, slot: int) -> SlotState:
        s = self._check(slot)
        f = lambda a: float(a[s])  # noqa: E731
        if self._phase[s] == 0:
            return SlotState(STATES[INSUFFICIENT_DATA], None, int(self._npts[s]), int(self._nmiss[s]),
                             int(self._nstale[s]), int(self._base_n[s]), math.nan, math.nan, math.nan)
        lim = individuals_limits(f(self._center), f(self._mrbar), int(self._n_used[s]), int(self._iters[s]),
                                 self._removed.get(s, ()))
        return SlotState(STATES[int(self._last_state[s])], lim, int(self._npts[s]), int(self._nmiss[s]),
                         int(self._nstale[s]), 0, f(self._ewma), f(self._cp), f(self._cm))

    def nbytes_per_slot(self) -> float:
        """Bytes of per-slot state (arrays, capacity included) plus held baselines, per slot."""
        total = sum(getattr(self, "_" + n).nbytes for n in _F64 + _I64 + _U32 + _I32 + _U8 + ("pool_row",))
        total += sum(v.nbytes + g.nbytes for v, g in self._pool.values())
        return total / max(self._n, 1)

    # -- processing --------------------------------------------------------------------------------------------
    def process(self, slots, ts, values) -> SpcBatchResult:
        slots = np.asarray(slots, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        n = len(slots)
        if ts.shape != (n,) or values.shape != (n,) or slots.ndim != 1:
            raise InvalidInput("slots, ts and values must be 1-D arrays of the same length")
        if n and (slots.min() < 0 or slots.max() >= self._n):
            raise NotFound("batch refers to a slot that was never added")
        out_state = np.full(n, SKIPPED, dtype=np.int8)
        out_index = np.full(n, -1, dtype=np.int64)
        out_ewma = np.full(n, np.nan)
        out_cp = np.full(n, np.nan)
        out_cm = np.full(n, np.nan)
        ev: list[tuple[np.ndarray, ...]] = []
        for idx in rounds(slots):
            self._round(idx, slots[idx], ts[idx], values[idx], out_state, out_index, out_ewma, out_cp, out_cm, ev)
        if ev:
            cols = [np.concatenate(c) for c in zip(*ev, strict=True)]
            order = np.lexsort((cols[4], cols[5], cols[0]))        # by position, chart, rule
            cols = [c[order] for c in cols]
        else:
            cols = [np.zeros(0, dtype=np.int64)] * 7
        pos, slot, ets, eidx, rule, chart, span = cols
        return SpcBatchResult(out_state, out_index, out_ewma, out_cp, out_cm, pos, slot, ets, eidx,
                              rule.astype(np.int8), chart.astype(np.int8), span)

    def _round(self, idx, s, t, x, out_state, out_index, out_ewma, out_cp, out_cm, ev) -> None:
        fresh = t > self._last_ts[s]
        np.add.at(self._nstale, s[~fresh], 1) if not fresh.all() else None
        idx, s, t, x = idx[fresh], s[fresh], t[fresh], x[fresh]
        self._last_ts[s] = t
        miss = np.isnan(x)
        if miss.any():
            sm = s[miss]
            self._nmiss[sm] += 1
            self._has_prev[sm] = 0
            self._has_zprev[sm] = 0
            idx, s, t, x = idx[~miss], s[~miss], t[~miss], x[~miss]
        if len(s) == 0:
            return
        out_index[idx] = self._npts[s]
        self._npts[s] += 1
        collecting = self._phase[s] == 0
        if collecting.any():
            self._collect(idx[collecting], s[collecting], x[collecting], out_state)
            est = ~collecting
            idx, s, t, x = idx[est], s[est], t[est], x[est]
            if len(s) == 0:
                return
        self._monitor(idx, s, t, x, out_state, out_index, out_ewma, out_cp, out_cm, ev)

    def _collect(self, idx, s, x, out_state) -> None:
        out_state[idx] = INSUFFICIENT_DATA
        row = self._pool_row[s]
        width = self._baseline[s]
        pos = self._base_n[s]
        for w in np.unique(width):
            sel = width == w
            vals, gaps = self._pool[int(w)]
            vals[row[sel], pos[sel]] = x[sel]
            gaps[row[sel], pos[sel]] = (self._has_prev[s[sel]] == 0) & (pos[sel] > 0)
        self._base_n[s] = pos + 1
        self._prev[s] = x
        self._has_prev[s] = 1
        full = pos + 1 >= width
        if not full.any():
            return
        for w in np.unique(width[full]):
            sel = full & (width == w)
            ss, rr = s[sel], row[sel]
            vals, gaps = self._pool[int(w)]
            center, mrbar, n_used, iters, keep = phase1_rows(vals[rr], gaps[rr], self._max_iter[ss].astype(np.int64))
            ok = np.isfinite(mrbar)
            self._base_n[ss[~ok]] = 0          # no moving range in the whole baseline: collect again
            if not ok.any():
                continue
            ss, keep = ss[ok], keep[ok]
            first = self._npts[ss] - int(w)
            for j in np.flatnonzero(~keep.all(axis=1)):
                self._removed[int(ss[j])] = tuple(int(first[j] + i) for i in np.flatnonzero(~keep[j]))
            self._establish(ss, center[ok], mrbar[ok], n_used[ok], iters[ok])
            for slot in ss:
                self._release_row(int(slot))

    def _monitor(self, idx, s, t, x, out_state, out_index, out_ewma, out_cp, out_cm, ev) -> None:
        # EWMA is plotted whatever the spread
        e = self._lam[s] * x + (1.0 - self._lam[s]) * self._ewma[s]
        self._ewma[s] = e
        out_ewma[idx] = e
        has_prev = self._has_prev[s] == 1
        prev = self._prev[s]
        self._prev[s] = x
        self._has_prev[s] = 1
        novar = self._sigma[s] == 0.0
        if novar.any():
            # zero-spread baseline: plotted, no rule evaluated, CUSUM sums frozen
            out_state[idx[novar]] = NO_VARIATION
            out_cp[idx[novar]] = self._cp[s[novar]]
            out_cm[idx[novar]] = self._cm[s[novar]]
            live = ~novar
            idx, s, t, x, e, prev, has_prev = (a[live] for a in (idx, s, t, x, e, prev, has_prev))
            if len(s) == 0:
                return
        c, sig = self._center[s], self._sigma[s]
        z = (x - c) / sig
        fired = self._rules_step(s, z, (prev - c) / sig)
        cp = np.maximum(0.0, self._cp[s] + z - self._k[s])
        cm = np.maximum(0.0, self._cm[s] - z - self._k[s])
        out_cp[idx], out_cm[idx] = cp, cm
        h = self._h[s]
        up, dn = cp > h, cm > h
        rs = self._reset[s] == 1
        self._cp[s] = np.where(up & rs, self._head[s], cp)
        self._cm[s] = np.where(dn & rs, self._head[s], cm)
        mr_hit = has_prev & (np.abs(x - prev) > self._mr_ucl[s])
        ew_hit = np.abs(e - c) > self._ewma_half[s]
        npts = self._npts[s] - 1
        any_hit = mr_hit | ew_hit | up | dn
        for rule, hit, span in fired:
            any_hit = any_hit | hit
            self._emit(ev, idx, s, t, npts, hit, rule, IND, span)
        self._emit(ev, idx, s, t, npts, mr_hit, 1, MR, 2)
        self._emit(ev, idx, s, t, npts, ew_hit, 1, EWMA_C, 1)
        self._emit(ev, idx, s, t, npts, up, 1, CUP, 1)
        self._emit(ev, idx, s, t, npts, dn, 1, CLO, 1)
        st = np.where(any_hit, OUT_OF_CONTROL, IN_CONTROL).astype(np.int8)
        out_state[idx] = st
        self._last_state[s] = st

    @staticmethod
    def _emit(ev, idx, s, t, npts, hit, rule, chart, span) -> None:
        if hit.any():
            k = int(hit.sum())
            sp = span if isinstance(span, np.ndarray) else np.full(len(s), span, dtype=np.int64)
            ev.append((idx[hit].astype(np.int64), s[hit], t[hit], npts[hit], np.full(k, rule, dtype=np.int64),
                       np.full(k, chart, dtype=np.int64), sp[hit].astype(np.int64)))

    def _rules_step(self, s, z, zprev) -> list[tuple[int, np.ndarray, Any]]:
        """Shift this point into every slot's history masks and test the enabled rules."""
        has_d = self._has_zprev[s] == 1
        self._has_zprev[s] = 1
        one = np.uint32(1)

        def push(name: str, bit: np.ndarray) -> np.ndarray:
            a = getattr(self, "_" + name)
            m = ((a[s] << one) | bit.astype(np.uint32)) & np.uint32(_M[15])
            a[s] = m
            return m

        A = push("mA", z > 0)
        B = push("mB", z < 0)
        Inc = push("mI", has_d & (z > zprev))
        Dec = push("mD", has_d & (z < zprev))
        P2 = push("mP2", z > 2)
        N2 = push("mN2", z < -2)
        P1 = push("mP1", z > 1)
        N1 = push("mN1", z < -1)
        W = push("mW", np.abs(z) < 1)
        enabled = self._rules[s]
        run = self._run[s].astype(np.uint32)
        mrun = (one << run) - one
        m3, m5, m8, m13, m15 = (np.uint32(_M[n]) for n in (3, 5, 8, 13, 15))
        up13 = Inc & m13
        tests = {
            1: (np.abs(z) > 3, 1),
            2: (((A & mrun) == mrun) | ((B & mrun) == mrun), run.astype(np.int64)),
            3: (((Inc & m5) == m5) | ((Dec & m5) == m5), 6),
            4: ((((Inc | Dec) & m13) == m13) & ((up13 == 0x1555) | (up13 == 0x0AAA)), 14),
            5: (((z > 2) & (np.bitwise_count(P2 & m3) >= 2)) | ((z < -2) & (np.bitwise_count(N2 & m3) >= 2)), 3),
            6: (((z > 1) & (np.bitwise_count(P1 & m5) >= 4)) | ((z < -1) & (np.bitwise_count(N1 & m5) >= 4)), 5),
            7: ((W & m15) == m15, 15),
            8: ((((P1 | N1) & m8) == m8) & ((P1 & m8) != 0) & ((N1 & m8) != 0), 8),
        }
        out = []
        for r, (hit, span) in tests.items():
            hit = hit & ((enabled >> (r - 1)) & 1).astype(bool)
            out.append((r, hit, span))
        return out
