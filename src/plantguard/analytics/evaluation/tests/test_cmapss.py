"""C-MAPSS loader, metrics and evaluation on a tiny synthetic data set written in the C-MAPSS text format."""

import math

import numpy as np
import pytest

from plantguard.analytics.evaluation.cmapss import (PUBLISHED, evaluate_cmapss, find_cmapss, format_report,
                                                    load_cmapss, nasa_score, read_units, rmse)
from plantguard.analytics.rul.synthetic import run_to_failure, truncate, write_cmapss
from plantguard.errors import InvalidInput

FAST = dict(clip=40.0, folds=3, max_iter=40, learning_rate=0.1, min_samples_leaf=20, threads=1)
GRID = ({"window": 5}, {"window": 10, "baseline": 5})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmapss")
    test, rul = truncate(run_to_failure(8, seed=2), seed=3)
    write_cmapss(d, "FD901", run_to_failure(15, seed=1), test, rul)
    return d


def test_metrics_by_hand():
    assert rmse([10, 20], [13, 16]) == pytest.approx(math.sqrt((9 + 16) / 2))
    # early by 13: e^1 - 1; late by 10: e^1 - 1
    assert nasa_score([7, 30], [20, 20]) == pytest.approx(2 * (math.e - 1))
    assert nasa_score([5], [5]) == 0.0


def test_reader_sorts_and_keeps_the_last_duplicate(tmp_path):
    p = tmp_path / "train_X.txt"
    p.write_text("2 1 5.0 \n1 2 2.0\n1 1 1.0\n1 2 3.0\n\n2 2 6.0\n")
    units, hs = read_units(p)
    assert units.tolist() == [1, 2]
    assert [h[:, 0].tolist() for h in hs] == [[1.0, 3.0], [5.0, 6.0]]


def test_reader_rejects_bad_files(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("1 1 x\n")
    with pytest.raises(InvalidInput, match="not a number"):
        read_units(p)
    p.write_text("1 1 1.0\n1 2\n")
    with pytest.raises(InvalidInput):
        read_units(p)
    with pytest.raises(InvalidInput, match="missing"):
        find_cmapss(tmp_path, "FD001")


def test_rul_count_must_match(data_dir, tmp_path):
    (tmp_path / "RUL.txt").write_text("5\n")
    with pytest.raises(InvalidInput, match="1 values for 8 test units"):
        load_cmapss(data_dir / "train_FD901.txt", data_dir / "test_FD901.txt", tmp_path / "RUL.txt")


def test_evaluation_on_a_synthetic_set(data_dir):
    data = find_cmapss(data_dir, "FD901")
    assert (len(data.train), len(data.test), data.train[0].shape[1]) == (15, 8, 6)
    seen = []
    report = evaluate_cmapss(data, grid=GRID, progress=seen.append, **FAST)
    assert len(seen) == 2 and len(report.candidates) == 2
    assert report.cv_rmse == min(cv for _, cv in report.candidates)
    assert report.config["window"] in (5, 10)
    const = rmse(np.full(8, 20.0), data.test_rul)
    assert report.rmse < const and report.rmse_clipped <= report.rmse + 1e-9
    assert 0.0 <= report.coverage <= 1.0 and report.train_seconds > 0
    assert report.pred.shape == report.truth.shape == (8,)
    text = format_report(report)
    assert "FD901" in text and "plantguard RulRegressor" in text
    assert "DCNN" not in text  # the published rows are FD001's


def test_report_lists_published_rows_for_fd001(data_dir):
    report = evaluate_cmapss(find_cmapss(data_dir, "FD901"), grid=GRID[:1], **FAST)
    text = format_report(type(report)(**{**report.__dict__, "subset": "FD001"}))
    for name, e, s in PUBLISHED:
        assert name in text and f"{e:.2f}" in text
