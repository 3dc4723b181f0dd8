"""NASA C-MAPSS turbofan evaluation of `RulRegressor`, with the protocol used in the literature.

    data = load_cmapss("train_FD001.txt", "test_FD001.txt", "RUL_FD001.txt")   # or find_cmapss(dir, "FD001")
    report = evaluate_cmapss(data)                                               # or evaluate_cmapss("/data/cmapss")
    print(format_report(report))

Protocol. Train on the run-to-failure units with the target min(remaining cycles, 125). Predict each test unit's
remaining life at its last observed cycle (one prediction per unit) and score against RUL_FDxxx.txt, the
unclipped truth: RMSE and the PHM08 score S = sum(exp(-d/13) - 1 if d < 0 else exp(d/10) - 1), d = predicted -
true (late predictions cost more). RMSE against the truth clipped at 125 is reported too, since some papers use
it. Coverage is the share of test units whose true remaining life lies inside the interval.

Honesty. Everything is chosen from the training files only: the channels, the normalisation, and the
configuration, which is the candidate of `grid` with the lowest out-of-fold RMSE over the training units (units
split into folds, never rows). The test labels are read only to score. The same grid and rule serve every file
of the same format (FD001..FD004 or others with the unit, cycle, values... layout).

File format: whitespace separated, no header, one row per (unit, cycle): unit id, cycle number, then any number
of operational settings and sensors (C-MAPSS has 3 + 21). Rows are sorted by unit and cycle on load; a
repeated (unit, cycle) keeps the last row; non-numeric fields are rejected with InvalidInput. The RUL file has
one number per test unit in increasing unit-id order.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plantguard.analytics.rul.learned import RulRegressor
from plantguard.errors import InvalidInput

CLIP = 125.0
SETTINGS = 3  # operational settings columns after unit and cycle (C-MAPSS: altitude, Mach number, throttle)

#: Published FD001 results (RMSE, PHM08 score S), last-cycle protocol; see the data set's README for sources.
PUBLISHED: list[tuple[str, float, float]] = [
    ("MLP (Babu 2016)", 37.56, 18000.0),
    ("SVR", 20.96, 1380.0),
    ("RVR", 23.80, 1500.0),
    ("Random forest (Zhang 2017)", 17.91, 480.0),
    ("CNN (Babu 2016)", 18.45, 1287.0),
    ("MODBNE (Zhang 2017)", 15.04, 334.0),
    ("Deep LSTM (Zheng 2017)", 16.14, 338.0),
    ("DCNN (Li 2018)", 12.61, 274.0),
    ("AGCNN", 12.42, 225.5),
    ("FFVE (2023)", 12.31, 280.0),
    ("Bi-level LSTM", 11.80, 194.0),
    ("MS-DCNN", 11.44, 196.0),
    ("MTSTAN", 10.97, 175.0),
]

#: Candidate configurations; the out-of-fold RMSE on the training units picks one.
DEFAULT_GRID: tuple[dict, ...] = (
    {"window": 30},
    {"window": 60},
    {"window": 90},
    {"window": 120},
)


def default_data_dir() -> Path:
    """$PLANTGUARD_CMAPSS_DIR, else ../shared/datasets/cmapss next to the repository."""
    env = os.environ.get("PLANTGUARD_CMAPSS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4].parent / "shared" / "datasets" / "cmapss"


@dataclass(frozen=True)
class CmapssData:
    name: str
    train: list[np.ndarray]  # per unit: (cycles, channels), cycles ascending, the last one the failure
    test: list[np.ndarray]  # per unit: (cycles, channels), cut before failure
    test_rul: np.ndarray  # true remaining cycles after the last test row, per test unit
    train_units: np.ndarray = field(default_factory=lambda: np.empty(0))
    test_units: np.ndarray = field(default_factory=lambda: np.empty(0))


def read_units(path: str | Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unit ids and per-unit value arrays (columns after unit and cycle) of one whitespace file."""
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                raise InvalidInput(f"{path.name}:{lineno}: not a number in {line.strip()[:60]!r}") from None
    if not rows:
        raise InvalidInput(f"{path.name}: no rows")
    widths = {len(r) for r in rows}
    if len(widths) != 1 or widths.pop() < 3:
        raise InvalidInput(f"{path.name}: every row needs the same number of columns, at least unit, cycle and one value")
    a = np.array(rows)
    # sort by unit then cycle; a repeated (unit, cycle) keeps the row that came last in the file
    order = np.lexsort((np.arange(len(a)), a[:, 1], a[:, 0]))
    a = a[order]
    last = np.r_[(a[1:, 0] != a[:-1, 0]) | (a[1:, 1] != a[:-1, 1]), True]
    a = a[last]
    units, start = np.unique(a[:, 0], return_index=True)
    return units, [a[i:j, 2:] for i, j in zip(start, np.r_[start[1:], len(a)])]


def load_cmapss(train_path: str | Path, test_path: str | Path, rul_path: str | Path, name: str | None = None) -> CmapssData:
    tr_units, train = read_units(train_path)
    te_units, test = read_units(test_path)
    try:
        rul = np.atleast_1d(np.loadtxt(rul_path, dtype=np.float64))
    except ValueError as e:
        raise InvalidInput(f"{Path(rul_path).name}: {e}") from None
    if len(rul) != len(test):
        raise InvalidInput(f"{Path(rul_path).name} has {len(rul)} values for {len(test)} test units")
    if train[0].shape[1] != test[0].shape[1]:
        raise InvalidInput("train and test files have different columns")
    return CmapssData(name or Path(train_path).stem.replace("train_", ""), train, test, rul, tr_units, te_units)


def find_cmapss(data_dir: str | Path | None = None, subset: str = "FD001") -> CmapssData:
    """Load train_<subset>.txt, test_<subset>.txt and RUL_<subset>.txt from one directory."""
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    paths = [d / f"{kind}_{subset}.txt" for kind in ("train", "test", "RUL")]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise InvalidInput(f"{d}: missing {', '.join(missing)}")
    return load_cmapss(*paths, name=subset)


def rmse(pred, truth) -> float:
    d = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.sqrt(np.mean(d * d)))


def nasa_score(pred, truth) -> float:
    """PHM08 score: a sum over units, late predictions (d > 0) penalised more."""
    d = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.sum(np.where(d < 0, np.expm1(-d / 13.0), np.expm1(d / 10.0))))


@dataclass(frozen=True)
class CmapssReport:
    subset: str
    n_train: int
    n_test: int
    rmse: float  # vs the unclipped truth
    score: float  # PHM08 S vs the unclipped truth
    rmse_clipped: float  # vs the truth clipped at `clip`
    score_clipped: float
    coverage: float  # share of test units whose true RUL is inside the interval
    level: float
    mean_width: float  # mean finite interval width (cycles); units with an unbounded upper side are left out
    unbounded: int  # test units whose upper bound is +inf (no degradation visible)
    train_seconds: float  # fitting the chosen configuration (out-of-fold calibration models + final model)
    select_seconds: float  # the whole grid search, including the chosen configuration
    cv_rmse: float  # out-of-fold RMSE of the chosen configuration on the training units (clipped target)
    config: dict
    candidates: list[tuple[dict, float]]
    clip: float
    pred: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    truth: np.ndarray


def evaluate_cmapss(data: CmapssData | str | Path | None = None, *, subset: str = "FD001",
                    grid: tuple[dict, ...] | list[dict] = DEFAULT_GRID, clip: float = CLIP, level: float = 0.9,
                    seed: int = 0, progress=None, **model_params) -> CmapssReport:
    """Select a configuration on the training units, fit it, and score the last cycle of every test unit.
    `data` is a CmapssData or a directory holding the three files of `subset`. `model_params` are passed to
    every RulRegressor (e.g. max_iter); `progress` (a callable taking a str) hears about each candidate."""
    if not isinstance(data, CmapssData):
        data = find_cmapss(data, subset)
    if not grid:
        raise InvalidInput("the grid needs at least one configuration")
    t_all = time.perf_counter()
    # the format's first three value columns are the operating settings: regimes are found from them (one
    # regime for a single-condition subset such as FD001) and every sensor is normalised within its regime
    model_params.setdefault("settings", SETTINGS)
    best, best_cv, best_time, candidates = None, math.inf, 0.0, []
    for cfg in grid:
        t0 = time.perf_counter()
        model = RulRegressor(**{**model_params, **cfg, "clip": clip, "level": level, "random_state": seed}).fit(data.train)
        took = time.perf_counter() - t0
        candidates.append((dict(cfg), model.cv_rmse_))
        if progress:
            progress(f"{cfg}: out-of-fold RMSE {model.cv_rmse_:.2f} ({took:.0f} s)")
        if model.cv_rmse_ < best_cv:
            best, best_cv, best_time = model, model.cv_rmse_, took
    select_s = time.perf_counter() - t_all
    est = best.predict_many(data.test)
    if any(not e.known for e in est):
        raise InvalidInput("a test unit has too few cycles for the model")
    pred = np.array([e.median for e in est])
    lo = np.array([e.lower for e in est])
    up = np.array([e.upper for e in est])
    truth = np.asarray(data.test_rul, np.float64)
    tc = np.minimum(truth, clip)
    finite = np.isfinite(up)
    return CmapssReport(
        subset=data.name, n_train=len(data.train), n_test=len(data.test), rmse=rmse(pred, truth),
        score=nasa_score(pred, truth), rmse_clipped=rmse(pred, tc), score_clipped=nasa_score(pred, tc),
        coverage=float(np.mean((lo <= truth) & (truth <= up))), level=level,
        mean_width=float(np.mean(up[finite] - lo[finite])) if finite.any() else math.nan,
        unbounded=int((~finite).sum()), train_seconds=best_time, select_seconds=select_s, cv_rmse=best_cv,
        config={k: v for k, v in best.get_params().items() if k in {k2 for c in grid for k2 in c} | set(model_params)},
        candidates=candidates, clip=clip, pred=pred, lower=lo, upper=up, truth=truth)


def format_report(report: CmapssReport) -> str:
    r = report
    lines = [
        f"NASA C-MAPSS {r.subset}: {r.n_train} training units, {r.n_test} test units, RUL at the last cycle of each test unit",
        f"target clipped at {r.clip:g}; configuration chosen by out-of-fold RMSE on training units only",
        "",
        "candidates (out-of-fold RMSE, clipped target):",
        *[f"  {c}: {cv:.2f}" for c, cv in r.candidates],
        f"chosen: {r.config}",
        "",
        f"{'method':<30} {'RMSE':>7} {'S':>9}",
        f"{'-' * 30} {'-' * 7} {'-' * 9}",
    ]
    if r.subset == "FD001":
        lines += [f"{name:<30} {e:>7.2f} {s:>9.0f}" for name, e, s in PUBLISHED]
    lines += [
        f"{'plantguard RulRegressor':<30} {r.rmse:>7.2f} {r.score:>9.0f}   (truth unclipped)",
        f"{'  same, truth clipped at %g' % r.clip:<30} {r.rmse_clipped:>7.2f} {r.score_clipped:>9.0f}",
        "",
        f"{r.level:.0%} interval: coverage {r.coverage:.0%} of test units; mean finite width {r.mean_width:.1f} cycles; "
        f"{r.unbounded} units with an unbounded upper side",
        f"training {r.train_seconds:.0f} s for the chosen configuration ({r.select_seconds:.0f} s for the grid search)",
    ]
    return "\n".join(lines)
