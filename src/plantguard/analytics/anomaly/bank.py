"""Many robust z-score detectors at once: one slot per monitored series, state in numpy arrays.

    bank = RobustZBank(warmup=30, bins=24)
    pump_temp = bank.add(alpha=0.01, threshold=0.9, persistence=2)
    room_temp = bank.add(period=86400)                             # hour-of-day profile (UTC)
    default = bank.add(**DEFAULT_POINT)                            # the platform's default wiring (defaults.py)
    res = bank.process(slots, values, ts_us)                        # int64[], float64[], int64[] us or None
    res.scores, res.is_anomaly, res.warm                            # one entry per reading, in batch order

Each slot computes exactly what `Thresholded(RobustZScore(...), ...)` computes reading by reading (scores,
decisions, what is learned, relearning after a sustained shift, episodes), or with `likelihood=True` what
`Thresholded(AnomalyLikelihood(RobustZScore(...), ...), ...)` computes: same formulas in the same order, checked
by a property test. A batch may interleave slots freely; `plantguard.analytics._lockstep.rounds` splits it into
rounds in which each slot appears at most once, in its own order, and each round is a handful of vector
operations, so the Python overhead is per round, not per reading.

`warmup` and `bins` are per bank (they size the arrays); everything else is per slot. Missing values (NaN,
+-inf) score 0, are not learned and leave the run of exceedances alone. With `ts=None` seasonal slots use
their global estimate. The bank pickles (trimmed to the slots in use) for checkpoints.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from plantguard.analytics._lockstep import rounds
from plantguard.analytics.anomaly.likelihood import CLIP as LK_CLIP, EVIDENCE_CAP
from plantguard.analytics.anomaly.robust import C_SCALE, K_LOC, K_SCALE, LN10, MAD_TO_SIGMA, RUN_GAIN, SLOW_DOWN
from plantguard.errors import InvalidInput


class BankResult(NamedTuple):
    scores: np.ndarray       # float64 in [0, 1)
    is_anomaly: np.ndarray   # bool
    warm: np.ndarray         # bool: the slot was warm when the reading was scored


# per slot: (dtype, default) of each parameter, then each piece of state
_F, _I, _B = np.float64, np.int64, np.bool_
_PARAM_FIELDS: dict[str, tuple[Any, Any]] = {
    "alpha": (_F, 0.01), "sigmas": (_F, 5.0), "min_scale": (_F, 1e-6), "rel_scale": (_F, 1e-4),
    "floor_history": (_F, 0.1), "stuck_ratio": (_F, 0.0), "period_us": (_I, 0),
    "threshold": (_F, 0.9), "protect": (_B, True), "persistence": (_I, 1), "relearn_after": (_I, 0),
    "protect_for": (_I, 600), "clear": (_F, 0.0), "onset_only": (_B, False),
    "likelihood": (_B, False), "short": (_I, 10), "long": (_I, 600), "lk_warmup": (_I, 100),
    "departure": (_F, 4.0), "spike": (_F, 2.0), "min_std": (_F, 0.3), "margin": (_F, 2.0),
    "peak_memory": (_I, 86_400),
}
_STATE_FIELDS: dict[str, tuple[Any, Any]] = {
    "n": (_I, 0), "loc": (_F, 0.0), "scale": (_F, 1.0), "run": (_I, 0), "relearns": (_I, 0), "open": (_B, False),
    "slow": (_F, 0.0), "res": (_F, np.inf), "prev": (_F, np.nan), "same": (_I, 0), "rep": (_F, 0.0),
    "seen": (_I, 0), "lk_n": (_I, 0), "lk_mean": (_F, 0.0), "lk_var": (_F, 0.0), "lk_recent": (_F, 0.0),
    "lk_peak": (_F, 0.0),
}
#: state a relearn (a fresh clone of the detector) resets
_FRESH = ("n", "loc", "scale", "slow", "res", "prev", "same", "rep", "seen", "lk_n", "lk_mean", "lk_var",
          "lk_recent", "lk_peak")


class RobustZBank:
    """Vectorised `Thresholded(RobustZScore)` (optionally with `AnomalyLikelihood` between them) for many series.
    See the module docstring."""

    def __init__(self, warmup: int = 30, bins: int = 24, capacity: int = 64):
        if warmup < 3:
            raise InvalidInput("warmup must be at least 3")
        if bins < 1:
            raise InvalidInput("bins must be at least 1")
        self.warmup = warmup
        self.bins = bins
        self.capacity = capacity
        self._size = 0
        self._cap = 0
        self._seasonal = False
        self._arrays: dict[str, np.ndarray] = {}
        self._grow(max(1, capacity))

    # -- slots ----------------------------------------------------------------------------------------------
    def _layout(self) -> dict[str, tuple[tuple[int, ...], Any, Any]]:
        lay: dict[str, tuple[tuple[int, ...], Any, Any]] = {
            k: ((), dt, d) for k, (dt, d) in {**_PARAM_FIELDS, **_STATE_FIELDS}.items()}
        lay["buf"] = ((self.warmup,), _F, 0.0)
        if self._seasonal:
            b = self.bins
            lay.update({"bn": ((b,), _I, 0), "bloc": ((b,), _F, 0.0), "bscale": ((b,), _F, 0.0)})
        return lay

    def _grow(self, cap: int) -> None:
        for name, (shape, dtype, default) in self._layout().items():
            new = np.full((cap, *shape), default, dtype=dtype)
            old = self._arrays.get(name)
            if old is not None:
                new[:self._size] = old[:self._size]
            self._arrays[name] = new
        self._cap = cap

    def __len__(self) -> int:
        return self._size

    def add(self, *, alpha: float = 0.01, sigmas: float = 5.0, min_scale: float = 1e-6, rel_scale: float = 1e-4,
            period: float | None = None, floor_history: float = 0.1, stuck_ratio: float | None = None,
            threshold: float = 0.9, protect: bool = True, persistence: int = 1, relearn_after: int | None = None,
            protect_for: int | None = 600, clear: float | None = None, onset_only: bool = False,
            likelihood: bool = False, short: int = 10, long: int = 600, likelihood_warmup: int = 100,
            departure: float = 4.0, spike: float = 2.0, min_std: float = 0.3, margin: float = 2.0,
            peak_memory: int = 86_400) -> int:
        """A new slot with these detector and threshold parameters (as RobustZScore, AnomalyLikelihood when
        `likelihood`, and Thresholded); every value is validated by building that wiring once."""
        self.reference(**{k: v for k, v in locals().items() if k != "self"})  # raises InvalidInput if invalid
        if period is not None and not self._seasonal:
            self._seasonal = True
            self._grow(self._cap)
        if self._size == self._cap:
            self._grow(2 * self._cap)
        i = self._size
        a = self._arrays
        vals = {"alpha": alpha, "sigmas": sigmas, "min_scale": min_scale, "rel_scale": rel_scale,
                "floor_history": floor_history, "stuck_ratio": stuck_ratio or 0.0,
                "period_us": 0 if period is None else int(round(period * 1_000_000)), "threshold": threshold,
                "protect": protect, "persistence": persistence, "relearn_after": relearn_after or 0,
                "protect_for": protect_for or 0, "clear": clear or 0.0, "onset_only": onset_only,
                "likelihood": likelihood, "short": short, "long": long, "lk_warmup": likelihood_warmup,
                "departure": departure, "spike": spike, "min_std": min_std, "margin": margin,
                "peak_memory": peak_memory}
        for k, v in vals.items():
            a[k][i] = v
        for k, (_dt, d) in _STATE_FIELDS.items():
            a[k][i] = d
        self._size += 1
        return i

    def reference(self, **params: Any):
        """The reading-by-reading detector a slot with these parameters computes (Thresholded around
        RobustZScore, with AnomalyLikelihood between them when `likelihood`)."""
        from plantguard.analytics.anomaly.likelihood import AnomalyLikelihood
        from plantguard.analytics.anomaly.robust import RobustZScore
        from plantguard.analytics.anomaly.threshold import Thresholded

        p = dict(params)
        th = {k: p.pop(k) for k in ("threshold", "protect", "persistence", "relearn_after", "protect_for", "clear",
                                    "onset_only") if k in p}
        lk = {k: p.pop(k) for k in ("short", "long", "departure", "spike", "min_std", "margin", "peak_memory")
              if k in p}
        if "likelihood_warmup" in p:
            lk["warmup"] = p.pop("likelihood_warmup")
        use_lk = p.pop("likelihood", False)
        det = RobustZScore(warmup=self.warmup, bins=self.bins, **p)
        if use_lk:
            det = AnomalyLikelihood(det, **lk)
        return Thresholded(det, **th)

    def params(self, slot: int) -> dict[str, Any]:
        a = self._arrays
        period_us = int(a["period_us"][slot])
        f = {k: float(a[k][slot]) for k in ("alpha", "sigmas", "min_scale", "rel_scale", "floor_history",
                                            "threshold", "departure", "spike", "min_std", "margin")}
        i = {k: int(a[k][slot]) for k in ("persistence", "short", "long", "peak_memory")}
        return {**f, **i, "period": period_us / 1_000_000 if period_us else None,
                "stuck_ratio": float(a["stuck_ratio"][slot]) or None, "protect": bool(a["protect"][slot]),
                "relearn_after": int(a["relearn_after"][slot]) or None,
                "protect_for": int(a["protect_for"][slot]) or None, "clear": float(a["clear"][slot]) or None,
                "onset_only": bool(a["onset_only"][slot]), "likelihood": bool(a["likelihood"][slot]),
                "likelihood_warmup": int(a["lk_warmup"][slot])}

    def state(self, slot: int) -> dict[str, Any]:
        """Global location/scale (None while warming up), warm flag, current run, relearn count, open episode."""
        a = self._arrays
        base_warm = bool(a["n"][slot] >= self.warmup)
        warm = base_warm and (not a["likelihood"][slot] or bool(a["lk_n"][slot] >= a["lk_warmup"][slot]))
        return {"warm": warm, "location": float(a["loc"][slot]) if base_warm else None,
                "scale": float(a["scale"][slot]) if base_warm else None, "run": int(a["run"][slot]),
                "relearns": int(a["relearns"][slot]), "in_episode": bool(a["open"][slot])}

    def nbytes_per_slot(self) -> int:
        """Bytes of parameters and state per slot (the arrays' per-row size)."""
        return sum(arr[0:1].nbytes for arr in self._arrays.values())

    # -- moving slots between banks (a partition's state taken over by another worker) ----------------------
    def take(self, slots: Any) -> "RobustZBank":
        """A new bank holding copies of these slots (parameters and learned state), numbered 0.. in this order."""
        out = RobustZBank(self.warmup, self.bins, capacity=max(1, len(slots)))
        out.absorb(self, slots)
        return out

    def absorb(self, other: "RobustZBank", slots: Any = None) -> list[int]:
        """Appends copies of `other`'s slots (all by default); returns their numbers here. Both banks must share
        warm-up and bins (the layout of a slot's arrays)."""
        if (other.warmup, other.bins) != (self.warmup, self.bins):
            raise InvalidInput(f"a bank with warmup {other.warmup} and bins {other.bins} cannot join one with "
                               f"warmup {self.warmup} and bins {self.bins}")
        src = np.arange(len(other), dtype=np.int64) if slots is None else np.asarray(slots, dtype=np.int64)
        if len(src) and (src.min() < 0 or src.max() >= len(other)):
            raise InvalidInput("a slot outside the bank")
        if other._seasonal and not self._seasonal:
            self._seasonal = True
            self._grow(self._cap)
        need = self._size + len(src)
        if need > self._cap:
            self._grow(max(need, 2 * self._cap))
        dst = slice(self._size, need)
        for name, arr in self._arrays.items():
            theirs = other._arrays.get(name)
            if theirs is not None:
                arr[dst] = theirs[src]
        self._size = need
        return list(range(dst.start, dst.stop))

    # -- checkpoints --------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = {k: v[:self._size].copy() for k, v in self._arrays.items()}
        state["_cap"] = self._size
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # a checkpoint of an older layout: fields it lacks start at their defaults
        size = self._size
        for name, (shape, dtype, default) in self._layout().items():
            if name not in self._arrays:
                self._arrays[name] = np.full((size, *shape), default, dtype=dtype)
        if self._cap == 0:
            self._grow(1)

    # -- processing -----------------------------------------------------------------------------------------
    def process(self, slots: Any, values: Any, ts: Any = None) -> BankResult:
        """Score, decide and learn a batch; `ts` in integer microseconds since the epoch (seasonal slots)."""
        slots = np.asarray(slots, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        if slots.shape != values.shape or slots.ndim != 1:
            raise InvalidInput("slots and values must be 1-D arrays of the same length")
        if len(slots) and (slots.min() < 0 or slots.max() >= self._size):
            raise InvalidInput(f"slot out of range (bank has {self._size} slots)")
        if ts is not None:
            ts = np.asarray(ts, dtype=np.int64)
            if ts.shape != slots.shape:
                raise InvalidInput("ts must have one entry per reading")
        n = len(slots)
        scores = np.zeros(n)
        anomaly = np.zeros(n, dtype=bool)
        warm = np.zeros(n, dtype=bool)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            for idx in rounds(slots):
                s, a, w = self._round(slots[idx], values[idx], None if ts is None else ts[idx])
                scores[idx], anomaly[idx], warm[idx] = s, a, w
        return BankResult(scores, anomaly, warm)

    def _floor(self, sl: np.ndarray, loc: np.ndarray) -> np.ndarray:
        a = self._arrays
        res = a["res"][sl]
        half = np.where(np.isfinite(res), 0.5 * res, 0.0)
        return np.maximum(np.maximum(a["min_scale"][sl], a["rel_scale"][sl] * np.abs(loc)),
                          np.maximum(a["floor_history"][sl] * a["slow"][sl], half))

    def _round(self, sl: np.ndarray, x: np.ndarray, t: np.ndarray | None):
        a = self._arrays
        W = self.warmup
        valid = np.isfinite(x)
        base_warm = a["n"][sl] >= W
        loc = a["loc"][sl]
        scale = a["scale"][sl]
        seasonal = self._seasonal and t is not None
        if seasonal:
            pu = a["period_us"][sl]
            has = pu > 0
            pu1 = np.where(has, pu, 1)
            b = np.where(has, (t % pu1) * self.bins // pu1, 0)
            bn = a["bn"][sl, b]
            use = has & (bn >= W)
            L = np.where(use, a["bloc"][sl, b], loc)
            S = np.where(use, a["bscale"][sl, b], scale)
        else:
            L, S = loc, scale
        sigmas = a["sigmas"][sl]
        z = np.abs(x - L) / S
        sr = a["stuck_ratio"][sl]
        stuck = (sr > 0) & (x == a["prev"][sl])
        if stuck.any():
            zs = sigmas * (a["same"][sl] + 1) * (1.0 - a["rep"][sl]) / np.where(sr > 0, sr, 1.0)
            z = np.where(stuck, np.maximum(z, zs), z)
        ok = valid & base_warm
        base_score = np.where(ok, -np.expm1(-z * LN10 / sigmas), 0.0)

        # the likelihood stage (slots with `likelihood`)
        lk = a["likelihood"][sl]
        lk_n = a["lk_n"][sl]
        warm = base_warm & (~lk | (lk_n >= a["lk_warmup"][sl]))
        score = base_score
        if lk.any():
            e = np.where(base_score < 1.0, np.minimum(-np.log1p(-base_score), EVIDENCE_CAP), EVIDENCE_CAP)
            e = np.where(base_score > 0.0, e, 0.0)
            mean, var, recent, peak = a["lk_mean"][sl], a["lk_var"][sl], a["lk_recent"][sl], a["lk_peak"][sl]
            sd = np.maximum(np.sqrt(var), a["min_std"][sl])
            dep, spike, margin = a["departure"][sl], a["spike"][sl], a["margin"][sl]
            one = np.maximum(spike * dep * sd, margin * (peak - mean))
            g_s = np.maximum(1.0 / a["short"][sl], 1.0 / (lk_n + 1))
            rec = recent + g_s * (e - recent)
            zl = np.maximum((rec - mean) / sd, dep * (e - mean) / one)
            s_lk = np.where(zl > 0.0, -np.expm1(-zl * LN10 / dep), 0.0)
            score = np.where(lk, np.where(valid & warm, s_lk, 0.0), base_score)

        # decisions and episodes (Thresholded)
        thr = a["threshold"][sl]
        exceeds = valid & warm & (score >= thr)
        run = np.where(exceeds, a["run"][sl] + 1, np.where(valid, 0, a["run"][sl]))
        was_open = a["open"][sl]
        clear = a["clear"][sl]
        has_clear = clear > 0
        stays = warm & (score >= np.where(has_clear, clear, thr)) & (has_clear | (run >= a["persistence"][sl]))
        anomaly = np.where(was_open, stays, exceeds & (run >= a["persistence"][sl]))
        anomaly = np.where(valid, anomaly, was_open)
        reported = np.where(a["onset_only"][sl] & was_open & anomaly & valid, 0.0, score)
        pf = a["protect_for"][sl]
        protected = exceeds & a["protect"][sl] & ((pf == 0) | (run <= pf))
        rl = a["relearn_after"][sl]
        relearn = exceeds & (rl > 0) & (run >= rl)
        learn = valid & (relearn | ~protected)
        opened = np.where(relearn, False, anomaly)
        if relearn.any():
            r = sl[relearn]
            run[relearn] = 0
            a["relearns"][r] += 1
            for k in _FRESH:
                a[k][r] = _STATE_FIELDS[k][1]
            if self._seasonal:
                a["bn"][r] = 0
        a["run"][sl] = run
        a["open"][sl] = opened
        if not learn.any():
            return reported, anomaly, warm
        self._learn(sl[learn], x[learn], None if not seasonal else (b[learn], has[learn], bn[learn]),
                    base_score[learn], (e[learn] if lk.any() else None), lk[learn], relearn[learn])
        return reported, anomaly, warm

    def _learn(self, sl, x, bins, base_score, e, lk, fresh) -> None:
        a = self._arrays
        W = self.warmup
        # what a relearn left is a fresh detector: not warm, whatever the reading was scored with
        base_warm = (a["n"][sl] >= W) & ~fresh
        lk_do = lk & base_warm
        if lk_do.any():
            self._learn_likelihood(sl[lk_do], e[lk_do])
        # runs of identical readings and the resolution (every learned reading, warm or not)
        prev = a["prev"][sl]
        d = np.abs(x - prev)
        same = d == 0.0
        a["prev"][sl] = x
        seen = a["seen"][sl] + 1
        a["seen"][sl] = seen
        rep = a["rep"][sl]
        a["rep"][sl] = rep + np.maximum(a["alpha"][sl] * RUN_GAIN, 1.0 / seen) * (same - rep)
        a["same"][sl] = np.where(same, a["same"][sl] + 1, 1)
        a["res"][sl] = np.where(~same & (d < a["res"][sl]), d, a["res"][sl])

        wu = ~base_warm
        if wu.any():
            s2, k = sl[wu], a["n"][sl[wu]]
            a["buf"][s2, k] = x[wu]
            a["n"][s2] = k + 1
            done = k + 1 >= W
            if done.any():
                self._init(s2[done])
        wl = base_warm
        if not wl.any():
            return
        alpha = a["alpha"][sl]
        if bins is not None:
            b, has, bn = bins
            hb = wl & has
            if hb.any():
                s3, b3, nb = sl[hb], b[hb], bn[hb]
                first = nb == 0
                xb, al = x[hb], alpha[hb]
                bl, bs = self._step(xb, a["bloc"][s3, b3], a["bscale"][s3, b3], np.maximum(al, 1.0 / (nb + 1)),
                                    np.maximum(al, 1.0 / np.maximum(nb, 1)), s3)
                a["bloc"][s3, b3] = np.where(first, xb, bl)
                a["bscale"][s3, b3] = np.where(first, a["scale"][s3], bs)
                a["bn"][s3, b3] = nb + 1
        s4 = sl[wl]
        al = alpha[wl]
        new_loc, new_scale = self._step(x[wl], a["loc"][s4], a["scale"][s4], al, al, s4)
        a["loc"][s4], a["scale"][s4] = new_loc, new_scale
        slow = a["slow"][s4]
        g = np.where(new_scale > slow, al, al * SLOW_DOWN)
        a["slow"][s4] = slow + g * (new_scale - slow)

    def _learn_likelihood(self, sl: np.ndarray, e: np.ndarray) -> None:
        a = self._arrays
        n = a["lk_n"][sl]
        mean, var, peak = a["lk_mean"][sl], a["lk_var"][sl], a["lk_peak"][sl]
        sd = np.maximum(np.sqrt(var), a["min_std"][sl])
        one = np.maximum(a["spike"][sl] * a["departure"][sl] * sd, a["margin"][sl] * (peak - mean))
        top = np.minimum(e, mean + one)
        g = np.maximum(1.0 / a["long"][sl], 1.0 / (n + 1))
        d = np.where(n < a["lk_warmup"][sl], e - mean, np.minimum(e - mean, LK_CLIP * sd))
        mean = mean + g * d
        a["lk_mean"][sl] = mean
        a["lk_var"][sl] = (1.0 - g) * (var + g * d * d)
        recent = a["lk_recent"][sl]
        a["lk_recent"][sl] = recent + np.maximum(1.0 / a["short"][sl], 1.0 / (n + 1)) * (e - recent)
        a["lk_peak"][sl] = np.maximum(top, mean + (peak - mean) * (1.0 - 1.0 / a["peak_memory"][sl]))
        a["lk_n"][sl] = n + 1

    def _step(self, x, loc, scale, g_loc, g_scale, sl):
        r = x - loc
        lim = K_LOC * scale
        loc = loc + g_loc * np.minimum(np.maximum(r, -lim), lim)
        cap = K_SCALE * scale
        var = scale * scale + g_scale * (np.minimum(r * r, cap * cap) / C_SCALE - scale * scale)
        return loc, np.maximum(np.sqrt(var), self._floor(sl, loc))

    def _init(self, sl: np.ndarray) -> None:
        a = self._arrays
        buf = a["buf"][sl]
        med = np.median(buf, axis=1)
        floor = self._floor(sl, med)
        mad = MAD_TO_SIGMA * np.median(np.abs(buf - med[:, None]), axis=1)
        scale = np.where(mad > floor, mad, np.std(buf, axis=1))
        scale = np.maximum(scale, floor)
        a["loc"][sl] = med
        a["scale"][sl] = scale
        a["slow"][sl] = scale
