"""Labelled synthetic streams with the situations a plant has, for evaluating detector wirings.

    streams = labelled_streams(seed=0)            # list[Stream]: values, labelled anomaly onsets, running mask
    normal = normal_stream("seasonal_daily", n=604_800, seed=3)   # the same kinds with no anomaly at all

Kinds (each deterministic per seed; noise levels, offsets and sample periods vary with it):

- level_shift: noise around a setpoint; a shift of 4-10 sigma at the anomaly that persists (the new normal).
- seasonal_daily: a daily cycle, sampled every minute or every five minutes; the anomaly is a bump against the
  cycle, 6 sigma, lasting a tenth of a day.
- shift_pattern: three production shifts a day at different rates, with ramps between them; the anomaly is a
  shift running 8 sigma above its usual rate.
- quantised_flat: a slow signal reported in 0.5 steps that changes step now and then (a tank level, a room
  temperature); the anomaly is a jump of 6 steps that stays for a while.
- slow_drift: a steady signal that starts to drift (a fouling exchanger) at 30 sigma over 3,000 readings.
- spikes: heavy-tailed noise (Student t, 4 degrees of freedom) with isolated spikes of 40 sigma as the anomalies (25-sigma readings are normal in such noise, a few a week).
- stuck: a noisy sensor that freezes at its last value for 2,000 readings (a stuck transmitter).
- restart: a process value that drops to ambient when the machine stops and ramps back up at restart; stops and
  start-ups are normal operation (the `running` mask says when the machine runs, as a line's state point would:
  false while stopped and while starting), the anomaly is a surge of 8 sigma while running.

A Stream's `onsets` are reading indices where an anomaly starts; `anomalous` marks every anomalous reading;
`windows()` gives the scoring windows: the usual ones centred on each onset, stretched to cover the anomaly's
own end (a detection when a transient fault ends belongs to that fault, not a false positive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plantguard.analytics.evaluation.windowed import WINDOW_FRACTION, onset_windows

KINDS = ("level_shift", "seasonal_daily", "shift_pattern", "quantised_flat", "slow_drift", "spikes", "stuck",
         "restart")
DAY_S = 86_400


@dataclass
class Stream:
    name: str
    kind: str
    values: np.ndarray        # float64
    ts: np.ndarray            # int64 microseconds since the epoch
    onsets: list[int]
    anomalous: np.ndarray     # bool per reading
    running: np.ndarray       # bool per reading: the machine runs (analyse only then, as `only_when: [running]`)
    ends: list[int] = field(default_factory=list)  # last anomalous reading of each anomaly

    def windows(self, fraction: float = WINDOW_FRACTION) -> list[tuple[int, int]]:
        n = len(self.values)
        base = onset_windows(n, self.onsets, fraction)
        if len(base) != len(self.onsets):  # merged: fall back to the centred windows
            return base
        width = max(1, int(fraction * n / max(1, len(self.onsets))))
        out: list[tuple[int, int]] = []
        for (a, b), end in zip(base, self.ends):
            b = min(n - 1, max(b, end + width // 10))
            if out and a <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        return out


def _base(kind: str, n: int, rng: np.random.Generator, sample_s: int | None = None
          ) -> tuple[np.ndarray, float, np.ndarray, int]:
    """Normal behaviour: (values, noise sigma, running mask, sample period in seconds)."""
    sd = float(rng.uniform(0.2, 3.0))
    level = float(rng.uniform(-50.0, 500.0))
    period_s = 1
    running = np.ones(n, bool)
    if kind == "seasonal_daily":
        period_s = int(rng.choice([60, 300])) if sample_s is None else sample_s
        t = np.arange(n) * period_s
        phase = rng.uniform(0, 2 * np.pi)
        x = level + 8 * sd * np.sin(2 * np.pi * t / DAY_S + phase) + rng.normal(0, sd, n)
    elif kind == "shift_pattern":
        period_s = 60 if sample_s is None else sample_s
        t = np.arange(n) * period_s
        rates = rng.uniform(-4, 4, 3) * sd
        shift = (t % DAY_S) // (8 * 3600)
        target = level + rates[shift]
        k = max(1, int(600 / period_s))  # 10-minute ramps between shifts
        x = np.convolve(np.r_[np.full(k, target[0]), target], np.ones(k) / k, "valid")[:n]
        x = x + rng.normal(0, sd, n)
    elif kind == "quantised_flat":
        sd = 0.5
        steps = np.cumsum(rng.random(n) < 1 / 400.0) % 3 - 1  # a step up or down now and then, bounded
        x = np.round((level + 0.5 * steps) * 2.0) / 2.0
    elif kind == "spikes":
        x = level + sd * rng.standard_t(4, n) / np.sqrt(2.0)
    elif kind == "restart":
        x = level + rng.normal(0, sd, n)
        ambient = level - 30 * sd
        i = int(rng.integers(1000, 3000))
        while i < n:
            stop = int(rng.integers(300, 2000))
            ramp = int(rng.integers(50, 300))
            a, b = i, min(n, i + stop)
            x[a:b] = ambient + rng.normal(0, sd / 3, b - a)
            c = min(n, b + ramp)
            running[a:c] = False  # stopped, then starting (PackML Starting): the state point says so
            x[b:c] = ambient + (level - ambient) * (1 - np.exp(-5 * np.arange(c - b) / ramp)) + rng.normal(0, sd, c - b)
            i = c + int(rng.integers(4000, 12000))
    else:  # level_shift, slow_drift, stuck: noise around a setpoint
        x = level + rng.normal(0, sd, n)
    return x, sd, running, period_s


def normal_stream(kind: str, n: int, seed: int, sample_s: int | None = 1) -> Stream:
    """`n` readings of normal behaviour of `kind` (no anomaly), sampled every `sample_s` seconds (1 Hz unless
    None, the kind's own rate): for false-alarm rates per week of 1 Hz data."""
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    x, _sd, running, period_s = _base(kind, n, rng, sample_s)
    ts = 1_700_000_000_000_000 + np.arange(n, dtype=np.int64) * period_s * 1_000_000
    return Stream(f"{kind}-normal-{seed}", kind, x, ts, [], np.zeros(n, bool), running)


def labelled_stream(kind: str, n: int = 20_000, seed: int = 0) -> Stream:
    """`n` readings of `kind` with one or two labelled anomalies after the first quarter."""
    rng = np.random.default_rng([seed, KINDS.index(kind), 1])
    x, sd, running, period_s = _base(kind, n, rng)
    anomalous = np.zeros(n, bool)
    onsets: list[int] = []
    ends: list[int] = []
    count = 1 if kind in ("level_shift", "slow_drift") else 2
    slots = np.linspace(n // 4, n - n // 8, count + 1)
    for j in range(count):
        lo, hi = int(slots[j]), int(slots[j + 1]) - 3000
        o = int(rng.integers(lo, max(lo + 1, hi)))
        if kind == "restart":
            while not running[o:o + 800].all():  # the surge happens while running
                o = (o + 997) % (n - 2000) + 1000
        sign = rng.choice([-1.0, 1.0])
        if kind == "level_shift":
            x[o:] += sign * rng.uniform(4, 10) * sd
            end = min(n, o + 300)
        elif kind == "seasonal_daily":
            length = max(20, DAY_S // 10 // period_s)
            end = min(n, o + length)
            x[o:end] += sign * 6 * sd * np.sin(np.pi * np.arange(end - o) / (end - o)) ** 0.5
        elif kind == "shift_pattern":
            length = 240
            end = min(n, o + length)
            x[o:end] += 8 * sd
        elif kind == "quantised_flat":
            length = 1500
            end = min(n, o + length)
            x[o:end] += sign * 3.0
        elif kind == "slow_drift":
            end = n
            x[o:] += sign * 30 * sd * np.minimum(1.0, np.arange(n - o) / 3000.0)
        elif kind == "spikes":
            end = o + 1
            x[o] += sign * 40 * sd
        elif kind == "stuck":
            end = min(n, o + 2000)
            x[o:end] = x[o - 1]
        else:  # restart: a surge while running
            end = min(n, o + 400)
            x[o:end] += 8 * sd
        anomalous[o:end] = True
        onsets.append(o)
        ends.append(end - 1)
    ts = 1_700_000_000_000_000 + np.arange(n, dtype=np.int64) * period_s * 1_000_000
    return Stream(f"{kind}-{seed}", kind, x, ts, onsets, anomalous, running, ends)


def labelled_streams(seeds: tuple[int, ...] = (0, 1, 2), n: int = 20_000) -> list[Stream]:
    """Every kind once per seed."""
    return [labelled_stream(k, n, s) for s in seeds for k in KINDS]
