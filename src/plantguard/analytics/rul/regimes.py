"""Operating regimes for condition data: the same sensor reads differently at different operating points (altitude
and throttle for an engine, speed and load for a pump), so degradation is only visible once each reading is
compared with what is normal *in its regime*.

    norm = RegimeNormaliser(settings=3).fit(np.vstack(histories))    # leading 3 columns: operating settings
    z = norm.transform(history)         # the other columns, z-scored per regime; settings columns dropped
    norm.regimes_, norm.regime_of(history)

Regimes are found by k-means on the standardised settings columns. k is chosen among 1..`max_regimes` as the
largest silhouette score on a sample of rows, and only kept when that score is at least `min_silhouette` (0.8):
operating points of real fleets (C-MAPSS has six) form tight, well separated clusters, while a single operating
point with noisy settings gives a low silhouette for every k and stays one regime, so a single-condition fleet is
normalised globally exactly as before. Every other column is z-scored with the mean and standard deviation of the
training rows of its regime (a regime's standard deviation under 1e-9 times its scale counts as 1: a constant
channel stays constant and is dropped later as uninformative). In streaming use each row's regime is that of the
nearest centre of its settings; a row whose settings are missing keeps the regime of the row before.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from plantguard.errors import InvalidInput


class RegimeNormaliser:
    def __init__(self, settings: int, max_regimes: int = 8, min_silhouette: float = 0.8, sample: int = 5000,
                 random_state: int = 0) -> None:
        if settings < 1 or max_regimes < 1 or not 0 < min_silhouette <= 1 or sample < 10:
            raise InvalidInput("need settings >= 1, max_regimes >= 1, 0 < min_silhouette <= 1 and sample >= 10")
        self.settings = settings
        self.max_regimes = max_regimes
        self.min_silhouette = min_silhouette
        self.sample = sample
        self.random_state = random_state

    def _scaled(self, s: np.ndarray) -> np.ndarray:
        return (s - self._s_mu) / self._s_sd

    def fit(self, rows: np.ndarray) -> RegimeNormaliser:
        rows = np.asarray(rows, np.float64)
        if rows.ndim != 2 or rows.shape[1] <= self.settings:
            raise InvalidInput(f"need rows with more than {self.settings} columns (settings first)")
        s = rows[:, :self.settings]
        ok = np.isfinite(s).all(axis=1)
        if ok.sum() < 2:
            raise InvalidInput("too few rows with finite operating settings to find regimes")
        self._s_mu = s[ok].mean(0)
        sd = s[ok].std(0)
        self._s_sd = np.where(sd > 1e-12, sd, 1.0)
        xs = self._scaled(s[ok])
        rng = np.random.default_rng(self.random_state)
        pick = rng.choice(len(xs), min(self.sample, len(xs)), replace=False)
        best_k, best_sil, best_model = 1, -1.0, None
        for k in range(2, self.max_regimes + 1):
            if len(np.unique(xs[pick], axis=0)) <= k:
                break
            km = KMeans(n_clusters=k, n_init=4, random_state=self.random_state).fit(xs)
            sil = float(silhouette_score(xs[pick], km.labels_[pick]))
            if sil > best_sil:
                best_k, best_sil, best_model = k, sil, km
        if best_model is None or best_sil < self.min_silhouette:
            self.centres_ = xs.mean(0, keepdims=True)
            best_k = 1
        else:
            self.centres_ = best_model.cluster_centers_
        self.regimes_ = best_k
        self.silhouette_ = best_sil
        reg = np.zeros(len(rows), np.int64)
        reg[ok] = self._nearest(xs)
        reg[~ok] = 0
        x = rows[:, self.settings:]
        self._mu = np.zeros((best_k, x.shape[1]))
        self._sd = np.ones((best_k, x.shape[1]))
        for r in range(best_k):
            sub = x[reg == r]
            sub = np.where(np.isfinite(sub), sub, np.nan)
            if len(sub):
                mu = np.nanmean(sub, 0)
                sd = np.nanstd(sub, 0)
                self._mu[r] = np.where(np.isfinite(mu), mu, 0.0)
                self._sd[r] = np.where(sd > 1e-9 * np.maximum(1.0, np.abs(self._mu[r])), sd, 1.0)
        return self

    def _nearest(self, xs: np.ndarray) -> np.ndarray:
        d = ((xs[:, None, :] - self.centres_[None, :, :]) ** 2).sum(-1)
        return np.argmin(d, axis=1)

    def regime_of(self, rows: np.ndarray, previous: int = 0) -> np.ndarray:
        """Regime per row; a row with missing settings keeps the one before (`previous` for the first)."""
        rows = np.asarray(rows, np.float64)
        s = rows[:, :self.settings]
        ok = np.isfinite(s).all(axis=1)
        reg = np.full(len(rows), -1, np.int64)
        if ok.any():
            reg[ok] = self._nearest(self._scaled(s[ok]))
        for i in range(len(reg)):
            if reg[i] < 0:
                reg[i] = reg[i - 1] if i else previous
        return reg

    def transform(self, rows: np.ndarray, previous: int = 0) -> np.ndarray:
        """The non-setting columns z-scored per regime (NaN stays NaN)."""
        rows = np.asarray(rows, np.float64)
        reg = self.regime_of(rows, previous)
        return (rows[:, self.settings:] - self._mu[reg]) / self._sd[reg]
