"""Small synthetic run-to-failure fleets in the C-MAPSS layout, for tests and examples.

Each unit has its own life length and initial wear; channels: 0 constant, 1 noise unrelated to wear, 2.. sensors
that drift with a health index h = exp((t - life) / tau) (some up, some down) plus noise. Deterministic per seed.

With `conditions` > 1 the fleet runs at several operating points, as C-MAPSS FD002/FD004 do: each cycle is flown
at one of them (drawn at random), three operating-setting columns come first and say which (with a little
noise), and every sensor reads a condition-dependent offset and gain much larger than the wear signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def run_to_failure(n_units: int = 20, *, seed: int = 0, sensors: int = 4, life: tuple[int, int] = (60, 140),
                   tau: float = 30.0, noise: float = 0.05, conditions: int = 1) -> list[np.ndarray]:
    """Per unit a (cycles, 2 + sensors) array whose last row is the failure cycle; with `conditions` > 1,
    (cycles, 3 + 2 + sensors) with the three operating settings first."""
    rng = np.random.default_rng(seed)
    gains = np.where(np.arange(sensors) % 2 == 0, 1.0, -1.0) * (1.0 + np.arange(sensors) / sensors)
    if conditions > 1:
        cond_rng = np.random.default_rng([conditions, 7])  # the operating points belong to the fleet, not the seed
        points = cond_rng.uniform(0.0, 1.0, (conditions, 3)) * np.array([40.0, 0.8, 100.0])
        offsets = cond_rng.uniform(-20.0, 20.0, (conditions, sensors))
        scales = cond_rng.uniform(0.5, 2.0, (conditions, sensors))
    out = []
    for _ in range(n_units):
        n = int(rng.integers(life[0], life[1] + 1))
        t = np.arange(n, dtype=np.float64)
        h = np.exp((t - (n - 1)) / tau) + rng.uniform(0.0, 0.05)
        x = np.empty((n, 2 + sensors))
        x[:, 0] = 100.0
        x[:, 1] = rng.normal(0.0, 1.0, n)
        x[:, 2:] = 10.0 + h[:, None] * gains + rng.normal(0.0, noise, (n, sensors))
        if conditions > 1:
            c = rng.integers(0, conditions, n)
            x[:, 2:] = offsets[c] + scales[c] * x[:, 2:]
            settings = points[c] + rng.normal(0.0, 0.002, (n, 3)) * np.array([40.0, 0.8, 100.0])
            x = np.hstack([settings, x])
        out.append(x)
    return out


def truncate(histories: list[np.ndarray], *, seed: int = 0, min_cycles: int = 20) -> tuple[list[np.ndarray], np.ndarray]:
    """Cut each history at a random cycle, as the C-MAPSS test sets are: (partial histories, true remaining cycles)."""
    rng = np.random.default_rng(seed)
    cut, rul = [], []
    for h in histories:
        k = int(rng.integers(min(min_cycles, len(h)), len(h) + 1))
        cut.append(h[:k])
        rul.append(len(h) - k)
    return cut, np.array(rul, np.float64)


def write_cmapss(directory: str | Path, subset: str, train: list[np.ndarray], test: list[np.ndarray],
                 test_rul: np.ndarray) -> None:
    """Write train_<subset>.txt, test_<subset>.txt and RUL_<subset>.txt in the C-MAPSS text format."""
    d = Path(directory)
    for kind, units in (("train", train), ("test", test)):
        with (d / f"{kind}_{subset}.txt").open("w", encoding="utf-8") as f:
            for u, h in enumerate(units, 1):
                for c, row in enumerate(h, 1):
                    f.write(f"{u} {c} " + " ".join(f"{v:.4f}" for v in row) + " \n")
    (d / f"RUL_{subset}.txt").write_text("".join(f"{int(r)} \n" for r in test_rul), encoding="utf-8")
