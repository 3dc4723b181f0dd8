"""`RulRegressor`: remaining useful life learned from run-to-failure histories of multivariate condition data.

    model = RulRegressor(window=30, clip=125).fit(histories)   # list of (cycles, channels) arrays, each run to failure
    est = model.predict(history)                                # RulEstimate at the last row of a partial history
    model.reset(); est = model.update(row)                      # the same, one row (cycle) at a time

Target. Row i of a history of n rows has n - 1 - i cycles left. The target is that clipped at `clip`: early in
life degradation is not observable, so the model only claims "at least about `clip`" there.

Operating regimes. With `settings` = k, the first k columns are operating settings (altitude, throttle; speed,
load): regimes are found by clustering them (regimes.py; one regime when they do not form separate clusters) and
every other column is z-scored within its row's regime before anything else, in training and in streaming use,
so a fleet that runs at several operating points degrades visibly. The settings columns are not features.

Channels (chosen on the training histories only). A channel is dropped when it is constant (training standard
deviation ~0) or when its absolute correlation with the clipped target is below `min_corr`; the rest are
z-scored with the training mean and standard deviation.

Features per row, per kept channel: the value, the mean and least-squares slope over the last `window` rows (fewer
at the start), exponentially smoothed values for each of `alphas`, and, with `baseline` > 0, the last smoothed
value minus the mean of the unit's own first `baseline` rows (engines start with different wear); plus the
number of rows seen (age). Everything is computable from O(window) state, so `update` equals `predict`.

Interval: Mondrian split-conformal on out-of-fold predictions. The training units are split into `folds` groups;
each group is predicted by a model fitted on the others, and the residuals (clipped target - prediction) are
grouped into `bins` bins of the predicted value. The interval at level L is prediction + the (1-L)/2 and (1+L)/2
residual quantiles of its bin (finite-sample corrected). Rows of one unit are correlated, so the coverage is
approximate; it is measured in the C-MAPSS evaluation. An upper bound at or past `clip` is reported as
`math.inf`: the model cannot tell how far beyond the clip the life goes. The final model is fitted on all units.

States: "insufficient_data" with fewer than `min_cycles` rows; "failed" when the median is below `failed_below`;
"healthy" when the upper bound is unbounded (no degradation visible); otherwise "degrading".

`threads` caps the OpenMP threads of the gradient boosting (None: the library default); 1 is often faster on a
busy machine or for small data sets, where thread synchronisation dominates.

Bad input: NaN or infinite values are carried forward from the last valid value of that channel (before any
valid value: the training mean). A row with the wrong number of channels raises InvalidInput. In `update`, a
`cycle` number at or below the last one seen is a duplicate or out-of-order row and is ignored (the previous
estimate is returned).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
from scipy.signal import lfilter
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from plantguard.analytics.rul.base import RulEstimate
from plantguard.errors import InvalidInput


def rul_targets(n: int, clip: float = math.inf) -> np.ndarray:
    """Remaining cycles for each row of a run-to-failure history of n rows, clipped at `clip`."""
    return np.minimum(np.arange(n - 1, -1, -1, dtype=np.float64), clip)


def _as_history(h, n_cols: int | None = None) -> np.ndarray:
    a = np.asarray(h, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :] if a.size else a.reshape(0, n_cols or 0)
    if a.ndim != 2:
        raise InvalidInput(f"a history is a 2-D array (cycles, channels), got {a.ndim} dimensions")
    if n_cols is not None and a.shape[1] != n_cols:
        raise InvalidInput(f"expected {n_cols} channels per row, got {a.shape[1]}")
    return a


def _ffill(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Carry the last finite value of each column forward; before the first one use `fill`."""
    x = np.where(np.isfinite(x), x, np.nan)
    bad = np.isnan(x)
    if not bad.any():
        return x
    n = len(x)
    idx = np.where(~bad, np.arange(n)[:, None], -1)
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = x[np.maximum(idx, 0), np.arange(x.shape[1])]
    return np.where(idx < 0, fill, out)


class RulRegressor:
    def __init__(self, window: int = 30, clip: float = 125.0, level: float = 0.9, alphas: tuple[float, ...] = (0.1, 0.03),
                 baseline: int = 0, min_corr: float = 0.2, min_cycles: int = 1, folds: int = 5, bins: int = 5,
                 max_iter: int = 500, learning_rate: float = 0.03, max_leaf_nodes: int = 15, min_samples_leaf: int = 50,
                 l2_regularization: float = 1.0, n_models: int = 1, random_state: int = 0,
                 failed_below: float = 1.0, threads: int | None = None, settings: int = 0) -> None:
        if window < 2 or clip <= 0 or not 0 < level < 1 or folds < 2 or bins < 1 or n_models < 1 or min_cycles < 1:
            raise ValueError("need window >= 2, clip > 0, 0 < level < 1, folds >= 2, bins >= 1, n_models >= 1, min_cycles >= 1")
        if any(not 0 < a <= 1 for a in alphas) or baseline < 0:
            raise ValueError("smoothing factors are in (0, 1] and baseline >= 0")
        if settings < 0:
            raise ValueError("settings (leading operating-setting columns) must be >= 0")
        self.settings = settings
        self._regimes = None
        self.window = window
        self.clip = clip
        self.level = level
        self.alphas = tuple(alphas)
        self.baseline = baseline
        self.min_corr = min_corr
        self.min_cycles = min_cycles
        self.folds = folds
        self.bins = bins
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.n_models = n_models
        self.random_state = random_state
        self.failed_below = failed_below
        self.threads = threads
        self._models: list | None = None
        self.reset()

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("window", "clip", "level", "alphas", "baseline", "min_corr", "min_cycles",
                                              "folds", "bins", "max_iter", "learning_rate", "max_leaf_nodes",
                                              "min_samples_leaf", "l2_regularization", "n_models", "random_state",
                                              "failed_below", "threads", "settings")}

    def clone(self, **changes) -> RulRegressor:
        return type(self)(**{**self.get_params(), **changes})

    def __repr__(self) -> str:
        return f"RulRegressor({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    @property
    def is_fitted(self) -> bool:
        return self._models is not None

    @property
    def regimes(self) -> int:
        """Operating regimes found in training (1 without settings columns)."""
        return 1 if self._regimes is None else self._regimes.regimes_

    def _prep(self, h: np.ndarray) -> np.ndarray:
        """With `settings`, every other column normalised within its row's operating regime, settings dropped."""
        return h if self._regimes is None or not len(h) else self._regimes.transform(h)

    # -- features -------------------------------------------------------------------------------------------
    def _features(self, h: np.ndarray) -> np.ndarray:
        """Feature rows for every row of one history (raw channels in, all columns)."""
        raw = h[:, self.channels_]
        x = (_ffill(raw, self._mu) - self._mu) / self._sd
        n, c = x.shape
        w = self.window
        t = np.arange(n, dtype=np.float64)
        z = np.zeros((1, c))
        cs = np.vstack([z, np.cumsum(x, 0)])
        cts = np.vstack([z, np.cumsum(x * t[:, None], 0)])
        ct2 = np.r_[0.0, np.cumsum(t * t)]
        hi = np.arange(1, n + 1)
        lo = np.maximum(0, hi - w)
        m = (hi - lo).astype(np.float64)[:, None]
        sx, stx = cs[hi] - cs[lo], cts[hi] - cts[lo]
        st = ((lo + hi - 1) * (hi - lo) / 2.0)[:, None]
        st2 = (ct2[hi] - ct2[lo])[:, None]
        den = m * st2 - st * st
        slope = np.where(den > 0, (m * stx - st * sx) / np.where(den > 0, den, 1.0), 0.0)
        feats = [x, sx / m, slope]
        for a in self.alphas:
            feats.append(lfilter([a], [1.0, a - 1.0], x, axis=0, zi=(1.0 - a) * x[:1])[0])
        if self.baseline:
            b = np.minimum(hi, self.baseline)
            base = cs[b] / b[:, None]
            feats.append(feats[-1] - base)
        feats.append((t + 1.0)[:, None])
        return np.hstack(feats)

    # -- training -------------------------------------------------------------------------------------------
    def _select(self, histories: list[np.ndarray]) -> None:
        allx = np.vstack(histories)
        y = np.hstack([rul_targets(len(h), self.clip) for h in histories])
        keep = []
        for j in range(allx.shape[1]):
            col = allx[:, j]
            ok = np.isfinite(col)
            if ok.sum() < 3:
                continue
            v, yy = col[ok], y[ok]
            sd = v.std()
            if not sd > 1e-9 * max(1.0, abs(v.mean())) or yy.std() == 0:
                continue
            if abs(np.corrcoef(v, yy)[0, 1]) >= self.min_corr:
                keep.append(j)
        if not keep:
            raise InvalidInput("no informative channel: every channel is constant or uncorrelated with the remaining life")
        self.channels_ = np.array(keep)
        sub = allx[:, self.channels_]
        self._mu = np.nanmean(np.where(np.isfinite(sub), sub, np.nan), axis=0)
        self._sd = np.nanstd(np.where(np.isfinite(sub), sub, np.nan), axis=0)

    def _fit_models(self, X: np.ndarray, y: np.ndarray) -> list:
        with threadpool_limits(limits=self.threads, user_api="openmp"):
            return self._fit_models_unlimited(X, y)

    def _fit_models_unlimited(self, X: np.ndarray, y: np.ndarray) -> list:
        models = []
        for k in range(self.n_models):
            m = HistGradientBoostingRegressor(
                max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
                max_features=1.0 if self.n_models == 1 else 0.7, early_stopping=False,
                random_state=self.random_state + k)
            models.append(m.fit(X, y))
        return models

    def _raw_predict(self, models: list, X: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=self.threads, user_api="openmp"):
            p = np.mean([m.predict(X) for m in models], axis=0)
        return np.clip(p, 0.0, self.clip)

    def fit(self, histories: Sequence) -> RulRegressor:
        """Fit on run-to-failure histories: each a (cycles, channels) array whose last row is the failure cycle."""
        hs = [_as_history(h) for h in histories]
        if len(hs) < self.folds:
            raise InvalidInput(f"need at least {self.folds} run-to-failure histories (folds), got {len(hs)}")
        ncols = {h.shape[1] for h in hs}
        if len(ncols) != 1:
            raise InvalidInput(f"every history needs the same channels, got widths {sorted(ncols)}")
        hs = [h for h in hs if len(h)]
        self.n_channels_ = ncols.pop()
        if self.settings:
            from plantguard.analytics.rul.regimes import RegimeNormaliser

            if self.settings >= self.n_channels_:
                raise InvalidInput(f"settings ({self.settings}) must leave at least one condition channel")
            self._regimes = RegimeNormaliser(self.settings, random_state=self.random_state).fit(np.vstack(hs))
            hs = [self._regimes.transform(h) for h in hs]
        self._select(hs)
        feats = [self._features(h) for h in hs]
        targets = [rul_targets(len(h), self.clip) for h in hs]
        X, y = np.vstack(feats), np.hstack(targets)
        unit = np.repeat(np.arange(len(hs)), [len(h) for h in hs])
        # out-of-fold predictions: the validation score and the conformal residuals
        order = np.random.default_rng(self.random_state).permutation(len(hs))
        fold_of = np.empty(len(hs), np.int64)
        fold_of[order] = np.arange(len(hs)) % self.folds
        oof = np.empty(len(y))
        for f in range(self.folds):
            test = fold_of[unit] == f
            oof[test] = self._raw_predict(self._fit_models(X[~test], y[~test]), X[test])
        self.oof_ = oof
        self.oof_unit_ = unit
        self.oof_target_ = y
        self.cv_rmse_ = float(np.sqrt(np.mean((oof - y) ** 2)))
        self._calibrate(oof, y)
        self._models = self._fit_models(X, y)
        self.reset()
        return self

    def _calibrate(self, pred: np.ndarray, y: np.ndarray) -> None:
        qs = np.quantile(pred, np.linspace(0, 1, self.bins + 1)[1:-1]) if self.bins > 1 else np.array([])
        self._edges = np.unique(qs)
        b = np.searchsorted(self._edges, pred, side="right")
        r = y - pred
        a = 1.0 - self.level
        lo, hi = [], []
        for k in range(len(self._edges) + 1):
            rk = np.sort(r[b == k])
            n = len(rk)
            if n == 0:
                rk, n = np.sort(r), len(r)
            # finite-sample corrected ranks of split-conformal, one per tail
            i_hi = min(n - 1, math.ceil((n + 1) * (1 - a / 2)) - 1)
            i_lo = max(0, math.floor((n + 1) * (a / 2)) - 1)
            lo.append(rk[i_lo])
            hi.append(rk[i_hi])
        self._q_lo, self._q_hi = np.array(lo), np.array(hi)

    # -- prediction -----------------------------------------------------------------------------------------
    def _check(self) -> None:
        if self._models is None:
            raise InvalidInput("the model is not fitted yet")

    def _estimates(self, p: np.ndarray) -> list[RulEstimate]:
        b = np.searchsorted(self._edges, p, side="right")
        lower = np.maximum(0.0, p + self._q_lo[b])
        upper = p + self._q_hi[b]
        out = []
        for m, lo, up in zip(p.tolist(), np.minimum(lower, p).tolist(), np.maximum(upper, p).tolist()):
            up = math.inf if up >= self.clip else up
            state = "failed" if m < self.failed_below else ("healthy" if math.isinf(up) else "degrading")
            out.append(RulEstimate(m, lo, up, self.level, state))
        return out

    def predict(self, history) -> RulEstimate:
        """Remaining life after the last row of `history` (rows = cycles, oldest first)."""
        return self.predict_many([history])[0]

    def predict_many(self, histories: Sequence) -> list[RulEstimate]:
        self._check()
        hs = [_as_history(h, self.n_channels_) for h in histories]
        out: list[RulEstimate | None] = [None] * len(hs)
        rows, where = [], []
        for i, h in enumerate(hs):
            if len(h) < self.min_cycles:
                out[i] = RulEstimate.insufficient(self.level)
            else:
                rows.append(self._features(self._prep(h))[-1])
                where.append(i)
        if rows:
            for i, est in zip(where, self._estimates(self._raw_predict(self._models, np.vstack(rows)))):
                out[i] = est
        return out  # type: ignore[return-value]

    def predict_path(self, history) -> np.ndarray:
        """Median estimate after every row of `history` (what streaming would have said at each cycle)."""
        self._check()
        h = _as_history(history, self.n_channels_)
        return self._raw_predict(self._models, self._features(self._prep(h))) if len(h) else np.empty(0)

    # -- streaming ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the streamed unit (a new asset, or the same one after replacement)."""
        self._buf: deque | None = None
        self._last: np.ndarray | None = None
        self._ewma: list[np.ndarray] = []
        self._n = 0
        self._base_sum: np.ndarray | None = None
        self._last_cycle: float | None = None
        self._last_regime = 0
        self._last_est = RulEstimate.insufficient(self.level)

    def update(self, row, cycle: float | None = None) -> RulEstimate:
        """Add one row (all channels of one cycle) of the streamed unit and return the estimate after it."""
        self._check()
        if cycle is not None:
            if self._last_cycle is not None and not cycle > self._last_cycle:
                return self._last_est
            self._last_cycle = cycle
        r = _as_history(row, self.n_channels_)
        if len(r) != 1:
            raise InvalidInput("update takes one row; use predict for a whole history")
        if self._regimes is not None:  # the row's own regime decides its normalisation
            self._last_regime = int(self._regimes.regime_of(r, self._last_regime)[0])
            r = self._regimes.transform(r, self._last_regime)
        v = r[0, self.channels_]
        if self._last is None:
            self._last = self._mu.copy()
            self._buf = deque(maxlen=self.window)
            self._base_sum = np.zeros(len(v))
        v = np.where(np.isfinite(v), v, self._last)
        self._last = v
        x = (v - self._mu) / self._sd
        self._buf.append(x)
        if self._n == 0:
            self._ewma = [x.copy() for _ in self.alphas]
        else:
            self._ewma = [e + a * (x - e) for a, e in zip(self.alphas, self._ewma)]
        self._n += 1
        if self._n <= self.baseline:
            self._base_sum += x
        if self._n < self.min_cycles:
            return self._last_est
        win = np.asarray(self._buf)
        m = len(win)
        t = np.arange(m, dtype=np.float64)
        tc = t - t.mean()
        den = float(tc @ tc)
        slope = (tc @ (win - win.mean(0))) / den if den > 0 else np.zeros(len(x))
        feats = [x, win.mean(0), slope, *self._ewma]
        if self.baseline:
            feats.append(self._ewma[-1] - self._base_sum / min(self._n, self.baseline))
        feats.append(np.array([float(self._n)]))
        p = self._raw_predict(self._models, np.concatenate(feats)[None, :])
        self._last_est = self._estimates(p)[0]
        return self._last_est
