"""Streaming analytics: statistical process control, anomaly detection, remaining useful life, OEE and KPIs.

Everything here is plain computation over numbers and numpy arrays: no web framework, database driver or
platform service is imported (tests/test_analytics_boundary.py checks it), so the same code runs in the
platform, at the edge, in notebooks and in the evaluation commands.

    spc/        control charts (I-MR, X-bar/R, X-bar/S, EWMA, CUSUM), Nelson rules, capability indices
    anomaly/    detectors with one contract (learn_one / score_one in [0, 1]), thresholding, vectorised banks
    rul/        remaining-useful-life models with uncertainty intervals
    oee.py      OEE with the six big losses; kpi.py maintenance and quality KPIs
    evaluation/ public-benchmark evaluations (SKAB, NASA C-MAPSS)
"""
