"""Faults the simulator can inject, each active from `start_us` (simulated time) until `end_us` (None: for good).

    BearingWear    a rolling-element bearing degrading over hours: vibration RMS grows slowly, then faster;
                   bearing and motor temperature and motor current follow; at the failure time the asset trips
    Drift          a point's reading walks away from the truth at a steady rate
    StuckSensor    a point keeps reporting the value it had when the fault began (quality stays good)
    Spikes         isolated single-sample spikes on a point
    DeviceOffline  a device sends nothing
    MessageFlood   a device sends `factor` times as many readings as its sampling periods call for
    LineStop       a line stops (planned or not): every machine on it reports state stopped

Targets are a full path or a unique trailing part of it ('filler-feed-pump/wsn/bearing-vibration').
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from plantguard.timeutil import US


@dataclass(frozen=True, kw_only=True)
class Fault:
    start_us: int
    end_us: int | None = None

    def __post_init__(self) -> None:
        if self.end_us is not None and self.end_us <= self.start_us:
            raise ValueError("a fault must end after it starts")

    def active(self, t_us):
        """Works on one timestamp or an array of them."""
        a = t_us >= self.start_us
        return a if self.end_us is None else a & (t_us < self.end_us)


@dataclass(frozen=True, kw_only=True)
class BearingWear(Fault):
    """Wear w in [0, 1] follows w(x) = (e^(k x) - 1) / (e^k - 1), x = time since onset / time to failure: the
    classic P-F curve shape. `end_us` is the bearing replacement (wear back to 0)."""

    asset: str
    time_to_failure_s: float = 10 * 3600.0
    shape: float = 4.0
    trip: bool = True  # the asset trips at failure (state fault); otherwise it runs on at full wear

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.time_to_failure_s <= 0 or self.shape <= 0:
            raise ValueError("time_to_failure_s and shape must be positive")

    @property
    def failure_us(self) -> int:
        return self.start_us + int(self.time_to_failure_s * US)

    def wear(self, t_us: np.ndarray) -> np.ndarray:
        x = np.clip((t_us - self.start_us) / (self.time_to_failure_s * US), 0.0, 1.0)
        return np.expm1(self.shape * x) / math.expm1(self.shape) * self.active(t_us)

    def failed(self, t_us: np.ndarray) -> np.ndarray:
        return self.trip & self.active(t_us) & (t_us >= self.failure_us)

    def seconds_to_wear(self, w: float) -> float:
        """Seconds after onset at which the wear reaches w (inverse of the curve)."""
        if not 0 <= w <= 1:
            raise ValueError("wear is between 0 and 1")
        return math.log1p(w * math.expm1(self.shape)) / self.shape * self.time_to_failure_s


@dataclass(frozen=True, kw_only=True)
class StuckSensor(Fault):
    point: str


@dataclass(frozen=True, kw_only=True)
class Spikes(Fault):
    point: str
    per_hour: float = 60.0
    magnitude: float = 0.3  # fraction of the engineering span; the spike is clipped to the range


@dataclass(frozen=True, kw_only=True)
class Drift(Fault):
    """A sensor whose reading walks away from the truth: `per_hour` of the engineering span per hour (a fouled
    or decalibrated transmitter), clipped to the range; quality stays good."""

    point: str
    per_hour: float = 0.2


@dataclass(frozen=True, kw_only=True)
class DeviceOffline(Fault):
    device: str


@dataclass(frozen=True, kw_only=True)
class MessageFlood(Fault):
    device: str
    factor: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.factor < 2:
            raise ValueError("a flood factor is at least 2")


@dataclass(frozen=True, kw_only=True)
class LineStop(Fault):
    line: str


KINDS = {"bearing": BearingWear, "stuck": StuckSensor, "drift": Drift, "spikes": Spikes, "offline": DeviceOffline, "flood": MessageFlood,
         "stop": LineStop}


def make_fault(kind: str, *, at_us: int, duration_s: float | None = None, **params) -> Fault:
    """make_fault('stuck', at_us=t, duration_s=600, point='.../bearing-temperature')."""
    try:
        cls = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown fault {kind!r}; one of {', '.join(KINDS)}") from None
    end = None if duration_s is None else at_us + int(duration_s * US)
    return cls(start_us=int(at_us), end_us=end, **params)
