"""NASA C-MAPSS evaluation of the RUL regressor: RMSE and PHM08 score at the last cycle of each test unit, next to
published results, with the training time on this machine.

    python bench/cmapss_eval.py [--data DIR] [--subset FD001] [--threads N]

The configuration is chosen on the training units only (out-of-fold RMSE); the test labels only score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_machine, record  # noqa: E402

from plantguard.analytics.evaluation.cmapss import default_data_dir, evaluate_cmapss, find_cmapss, format_report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(default_data_dir()), help="directory with train_/test_/RUL_<subset>.txt")
    ap.add_argument("--subset", default="FD001")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads for gradient boosting (0: library default)")
    args = ap.parse_args()
    m = print_machine()
    data = find_cmapss(args.data, args.subset)
    report = evaluate_cmapss(data, threads=args.threads or None, progress=lambda s: print("  " + s, flush=True))
    print(format_report(report))
    record("cmapss_eval", {
        "subset": report.subset, "rmse": round(report.rmse, 3), "score": round(report.score, 1),
        "rmse_clipped": round(report.rmse_clipped, 3), "score_clipped": round(report.score_clipped, 1),
        "coverage": round(report.coverage, 3), "level": report.level, "mean_width": round(report.mean_width, 2),
        "unbounded": report.unbounded, "cv_rmse": round(report.cv_rmse, 3), "config": report.config,
        "train_s": round(report.train_seconds, 1), "select_s": round(report.select_seconds, 1),
        "threads": args.threads, "cpu": m["cpu"], "cores": m["cores"],
    })


if __name__ == "__main__":
    main()
