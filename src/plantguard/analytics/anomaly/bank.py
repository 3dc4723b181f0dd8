"""Many robust z-score detectors at once: one slot per monitored series, state in numpy arrays.

    bank = RobustZBank(warmup=30, bins=24)
    pump_temp = bank.add(alpha=0.01, threshold=0.9, persistence=2)
    room_temp = bank.add(period=86400)                             # hour-of-day profile (UTC)
    res = bank.process(slots, values, ts_us)                        # int64[], float64[], int64[] us or None
    res.scores, res.is_anomaly, res.warm                            # one entry per reading, in batch order

Each slot computes exactly what `Thresholded(RobustZScore(...), ...)` computes reading by reading (scores,
decisions, what is learned, relearning after a sustained shift): same formulas in the same order, checked by
a property test. A batch may interleave slots freely; `plantguard.analytics._lockstep.rounds` splits it into
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
from plantguard.analytics.anomaly.robust import C_SCALE, K_LOC, K_SCALE, LN10, MAD_TO_SIGMA
from plantguard.errors import InvalidInput


class BankResult(NamedTuple):
    scores: np.ndarray       # float64 in [0, 1)
    is_anomaly: np.ndarray   # bool
    warm: np.ndarray         # bool: the slot was warm when the reading was scored


_PARAMS = ("alpha", "sigmas", "min_scale", "rel_scale", "period_us", "threshold", "protect", "persistence",
           "relearn_after")


class RobustZBank:
    """Vectorised `Thresholded(RobustZScore)` for many series. See the module docstring."""

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
    def _layout(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        w, b = self.warmup, self.bins
        lay: dict[str, tuple[tuple[int, ...], Any]] = {
            "alpha": ((), np.float64), "sigmas": ((), np.float64), "min_scale": ((), np.float64),
            "rel_scale": ((), np.float64), "period_us": ((), np.int64), "threshold": ((), np.float64),
            "protect": ((), np.bool_), "persistence": ((), np.int64), "relearn_after": ((), np.int64),
            "n": ((), np.int64), "loc": ((), np.float64), "scale": ((), np.float64), "run": ((), np.int64),
            "relearns": ((), np.int64), "buf": ((w,), np.float64),
        }
        if self._seasonal:
            lay.update({"bn": ((b,), np.int64), "bloc": ((b,), np.float64), "bscale": ((b,), np.float64)})
        return lay

    def _grow(self, cap: int) -> None:
        for name, (shape, dtype) in self._layout().items():
            new = np.zeros((cap, *shape), dtype=dtype)
            old = self._arrays.get(name)
            if old is not None:
                new[:self._size] = old[:self._size]
            self._arrays[name] = new
        self._cap = cap

    def __len__(self) -> int:
        return self._size

    def add(self, *, alpha: float = 0.01, sigmas: float = 5.0, min_scale: float = 1e-6, rel_scale: float = 1e-4,
            period: float | None = None, threshold: float = 0.9, protect: bool = True, persistence: int = 1,
            relearn_after: int | None = None) -> int:
        """A new slot with these detector and threshold parameters (as RobustZScore and Thresholded)."""
        if not 0.0 < alpha < 1.0:
            raise InvalidInput("alpha must be in (0, 1)")
        if not sigmas > 0 or not min_scale > 0 or rel_scale < 0:
            raise InvalidInput("sigmas and min_scale must be positive, rel_scale non-negative")
        if period is not None and not period > 0:
            raise InvalidInput("period must be positive seconds or None")
        if not 0.0 < threshold < 1.0:
            raise InvalidInput("threshold must be in (0, 1)")
        if persistence < 1 or (relearn_after is not None and relearn_after < persistence):
            raise InvalidInput("persistence must be >= 1 and relearn_after None or >= persistence")
        if period is not None and not self._seasonal:
            self._seasonal = True
            self._grow(self._cap)
        if self._size == self._cap:
            self._grow(2 * self._cap)
        i = self._size
        a = self._arrays
        a["alpha"][i], a["sigmas"][i], a["min_scale"][i], a["rel_scale"][i] = alpha, sigmas, min_scale, rel_scale
        a["period_us"][i] = 0 if period is None else int(round(period * 1_000_000))
        a["threshold"][i], a["protect"][i], a["persistence"][i] = threshold, protect, persistence
        a["relearn_after"][i] = relearn_after or 0
        a["scale"][i] = 1.0
        self._size += 1
        return i

    def params(self, slot: int) -> dict[str, Any]:
        a = self._arrays
        period_us = int(a["period_us"][slot])
        return {"alpha": float(a["alpha"][slot]), "sigmas": float(a["sigmas"][slot]),
                "min_scale": float(a["min_scale"][slot]), "rel_scale": float(a["rel_scale"][slot]),
                "period": period_us / 1_000_000 if period_us else None, "threshold": float(a["threshold"][slot]),
                "protect": bool(a["protect"][slot]), "persistence": int(a["persistence"][slot]),
                "relearn_after": int(a["relearn_after"][slot]) or None}

    def state(self, slot: int) -> dict[str, Any]:
        """Global location/scale (None while warming up), warm flag, current run and relearn count."""
        a = self._arrays
        warm = bool(a["n"][slot] >= self.warmup)
        return {"warm": warm, "location": float(a["loc"][slot]) if warm else None,
                "scale": float(a["scale"][slot]) if warm else None, "run": int(a["run"][slot]),
                "relearns": int(a["relearns"][slot])}

    def nbytes_per_slot(self) -> int:
        """Bytes of parameters and state per slot (the arrays' per-row size)."""
        return sum(arr[0:1].nbytes for arr in self._arrays.values())

    # -- checkpoints --------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = {k: v[:self._size].copy() for k, v in self._arrays.items()}
        state["_cap"] = self._size
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
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

    def _round(self, sl: np.ndarray, x: np.ndarray, t: np.ndarray | None):
        a = self._arrays
        W = self.warmup
        valid = np.isfinite(x)
        n = a["n"][sl]
        warm = n >= W
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
        z = np.abs(x - L) / S
        ok = valid & warm
        score = np.where(ok, -np.expm1(-z * LN10 / a["sigmas"][sl]), 0.0)
        exceeds = ok & (score >= a["threshold"][sl])
        run = np.where(exceeds, a["run"][sl] + 1, np.where(valid, 0, a["run"][sl]))
        anomaly = exceeds & (run >= a["persistence"][sl])
        rl = a["relearn_after"][sl]
        relearn = exceeds & (rl > 0) & (run >= rl)
        learn = valid & (relearn | ~(exceeds & a["protect"][sl]))
        if relearn.any():
            r = sl[relearn]
            run[relearn] = 0
            a["relearns"][r] += 1
            a["n"][r] = 0
            n = np.where(relearn, 0, n)
            if self._seasonal:
                a["bn"][r] = 0
        a["run"][sl] = run
        now_warm = n >= W

        wu = learn & ~now_warm
        if wu.any():
            s2, k = sl[wu], n[wu]
            a["buf"][s2, k] = x[wu]
            a["n"][s2] = k + 1
            done = k + 1 >= W
            if done.any():
                self._init(s2[done])

        wl = learn & now_warm
        if not wl.any():
            return score, anomaly, warm
        alpha = a["alpha"][sl]
        if seasonal:
            hb = wl & has
            if hb.any():
                s3, b3, nb = sl[hb], b[hb], bn[hb]
                first = nb == 0
                xb, al = x[hb], alpha[hb]
                bl, bs = self._step(xb, a["bloc"][s3, b3], a["bscale"][s3, b3], np.maximum(al, 1.0 / (nb + 1)),
                                    np.maximum(al, 1.0 / np.maximum(nb, 1)), s3)
                a["bloc"][s3, b3] = np.where(first, xb, bl)
                a["bscale"][s3, b3] = np.where(first, scale[hb], bs)
                a["bn"][s3, b3] = nb + 1
        s4 = sl[wl]
        al = alpha[wl]
        a["loc"][s4], a["scale"][s4] = self._step(x[wl], loc[wl], scale[wl], al, al, s4)
        return score, anomaly, warm

    def _step(self, x, loc, scale, g_loc, g_scale, sl):
        a = self._arrays
        r = x - loc
        lim = K_LOC * scale
        loc = loc + g_loc * np.minimum(np.maximum(r, -lim), lim)
        cap = K_SCALE * scale
        var = scale * scale + g_scale * (np.minimum(r * r, cap * cap) / C_SCALE - scale * scale)
        new = np.maximum(np.maximum(np.sqrt(var), a["min_scale"][sl]), a["rel_scale"][sl] * np.abs(loc))
        return loc, new

    def _init(self, sl: np.ndarray) -> None:
        a = self._arrays
        buf = a["buf"][sl]
        med = np.median(buf, axis=1)
        floor = np.maximum(a["min_scale"][sl], a["rel_scale"][sl] * np.abs(med))
        mad = MAD_TO_SIGMA * np.median(np.abs(buf - med[:, None]), axis=1)
        scale = np.where(mad > floor, mad, np.std(buf, axis=1))
        a["loc"][sl] = med
        a["scale"][sl] = np.maximum(scale, floor)
