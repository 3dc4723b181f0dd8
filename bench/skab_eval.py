"""SKAB evaluation with the current upstream leaderboard's protocol (400-row train split, 60 s NAB windows),
printed next to the published rows, plus the calibration on the anomaly-free recording that chose the CUSUM
parameters (the alarm threshold is calibrated inside evaluate_skab from the same recording).

    python bench/skab_eval.py [--data ../shared/datasets/skab/data] [--calibrate]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from common import print_machine, record

from plantguard.analytics.evaluation.skab import (
    SkabConfig, _chunks, _reference_change_points, evaluate_skab, fit_reference, format_report, load_skab)

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "skab" / "data"


def calibrate(data: Path, base: SkabConfig) -> None:
    """False change points per anomaly-free chunk for a grid of CUSUM (drift, threshold); labels never read.
    Rule: the smallest threshold on the grid whose mean is at most 1 false change point per chunk."""
    normal = [f for f in load_skab(data) if not f.labelled]
    chunks = [c for f in normal for c in _chunks(f, base.reference_chunk)]
    print(f"calibration on {len(chunks)} anomaly-free chunks of {base.reference_chunk} rows")
    for drift in (0.5, 1.0):
        for h in (5.0, 10.0, 20.0, 40.0, 80.0):
            cfg = dataclasses.replace(base, cusum_drift=drift, cusum_threshold=h)
            ref = fit_reference(normal, cfg)
            n = [len(_reference_change_points(c, cfg, ref)) for c in chunks]
            print(f"  drift {drift:>4}  threshold {h:>5}: {np.mean(n):.2f} false change points per chunk")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--calibrate", action="store_true", help="also print the CUSUM calibration grid")
    args = ap.parse_args()
    m = print_machine()
    cfg = SkabConfig()
    if args.calibrate:
        calibrate(args.data, cfg)
    rep = evaluate_skab(args.data, cfg)
    if rep.regime is not None:
        c = rep.regime
        print(f"regime calibration (normal pieces only): high {c.high:.3f}, low {c.low:.3f}, hold {c.hold}; "
              f"pieces {c.pieces}; alarmed % {({k: round(v, 2) for k, v in c.far_percent.items()})}; "
              f"alarm segments {c.segments}")
    print(format_report(rep))
    record("skab_eval", {"data": str(args.data), "files": rep.files, "rows": rep.rows, "f1": round(rep.f1, 4),
                         "far": round(rep.far, 2), "mar": round(rep.mar, 2),
                         "nab": {k: round(v, 2) for k, v in rep.nab.items()},
                         "missed_cps": rep.missed_changepoints, "fps": rep.false_changepoints,
                         "mean_delay_s": round(rep.mean_delay_s, 1), "runtime_s": round(rep.runtime_s, 2),
                         "regime_high": rep.regime and round(rep.regime.high, 4),
                         "config": dataclasses.asdict(cfg), "machine": m})
    return 0


if __name__ == "__main__":
    sys.exit(main())
