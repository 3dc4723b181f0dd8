"""Lockstep iteration: process a batch of readings for many series with numpy, in time order per series.

A batch holds readings of many series (points or assets) interleaved. Recursive statistics (EWMA, CUSUM,
moving ranges) must see each series' readings in order, but different series are independent. `rounds(slots)`
groups the batch into rounds: round k holds the k-th reading of every series that has one, so every round
touches each series at most once and can be computed as one vector operation. A batch of n readings spread
over m series takes about n/m rounds, which keeps the per-reading cost O(1) and the Python overhead per batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def occurrence(slots: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements of the batch have the same slot (0 for the first)."""
    n = len(slots)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(slots, kind="stable")
    s = slots[order]
    start = np.r_[True, s[1:] != s[:-1]]
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(start, idx, 0))
    occ = np.empty(n, dtype=np.int64)
    occ[order] = idx - first
    return occ


def rounds(slots: np.ndarray) -> Iterator[np.ndarray]:
    """Yield index arrays into the batch, one per round; within a round every slot appears at most once,
    and the rounds follow each slot's order in the batch."""
    occ = occurrence(slots)
    if len(occ) == 0:
        return
    n_rounds = int(occ.max()) + 1
    if n_rounds == 1:
        yield np.arange(len(slots))
        return
    order = np.argsort(occ, kind="stable")
    bounds = np.searchsorted(occ[order], np.arange(n_rounds + 1))
    for k in range(n_rounds):
        yield order[bounds[k]:bounds[k + 1]]
