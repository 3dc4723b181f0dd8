"""The one contract every anomaly detector follows.

    det = RobustZScore(window=300)
    for x in stream:
        s = det.score_one(x)     # float in [0, 1], higher = more anomalous; 0.0 while warming up
        det.learn_one(x)

- `x` is a float for univariate detectors and a mapping name -> float for multivariate ones.
- Missing values (None or NaN; for mappings also absent keys) never raise: a univariate detector skips them
  (score 0.0, nothing learned); a multivariate detector scores the features present and learns nothing from an
  incomplete reading. `is_warm` tells whether scores mean anything yet.
- Constructor arguments are stored unchanged under their own names and state lives in private attributes, so
  `clone()` (same parameters, fresh state), `repr()` and pickling come for free. `checkpoint()`/`restore()`
  wrap pickling with a format header so a restarted platform continues where it stopped instead of relearning.
- Turning scores into alarms is not the detector's job: see `threshold.Thresholded`, which also keeps readings
  judged anomalous out of what the detector learns.
"""

from __future__ import annotations

import abc
import inspect
import math
import pickle
from collections.abc import Mapping
from typing import Any, Self

from plantguard.errors import InvalidInput

_LEGACY_MAGIC = b"PGDET1\n"  # detector checkpoints before the one versioned format
DETECTOR_KIND = "detector"


def is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


class Detector(abc.ABC):
    """Base of every streaming detector."""

    #: "univariate" detectors take a float, "multivariate" ones a mapping of floats.
    kind: str = "univariate"
    #: True for detectors whose own algorithm needs the anomalous readings too (a CUSUM accumulates evidence on
    #: exactly the readings that score high, then restarts): Thresholded(protect=True) still feeds them every one.
    learns_from_every_reading: bool = False

    @abc.abstractmethod
    def learn_one(self, x: Any) -> None:
        """Update the state with one observation (assumed normal)."""

    @abc.abstractmethod
    def score_one(self, x: Any) -> float:
        """Anomaly score of one observation in [0, 1] without changing the state; 0.0 during warm-up."""

    @property
    @abc.abstractmethod
    def is_warm(self) -> bool:
        """True once enough has been learned for scores to be meaningful."""

    # -- parameters, cloning, checkpoints -------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {name: getattr(self, name) for name, p in sig.parameters.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def clone(self) -> Self:
        """A new detector with the same parameters and no learned state."""
        return type(self)(**self._get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({args})"

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling: attributes a newer version added (a new parameter, new learned state) take the values a
        fresh detector with the stored parameters has, so a checkpoint written before an upgrade still loads and
        runs; state it already had is kept."""
        defaults: dict[str, Any] = {}
        try:
            sig = inspect.signature(type(self).__init__)
            params = {k: state[k] for k in sig.parameters if k != "self" and k in state}
            defaults = type(self)(**params).__dict__
        except Exception:  # noqa: BLE001 - no defaults to offer: keep the state as stored
            defaults = {}
        self.__dict__.update({**defaults, **state})

    def checkpoint(self) -> bytes:
        """The detector and its learned state as bytes in the platform's one checkpoint format (plantguard.checkpoints,
        kind "detector", unsealed: whoever stores it seals it); `restore` gives the detector back."""
        from plantguard import checkpoints

        return checkpoints.dumps(self, DETECTOR_KIND)

    @staticmethod
    def restore(blob: bytes) -> Detector:
        """Inverse of `checkpoint`; detector checkpoints of the former format (PGDET1) still load. Only state
        classes are unpickled (plantguard.checkpoints.unpickle)."""
        from plantguard import checkpoints

        try:
            if isinstance(blob, (bytes, bytearray)) and bytes(blob[:len(_LEGACY_MAGIC)]) == _LEGACY_MAGIC:
                det = checkpoints.unpickle(bytes(blob[len(_LEGACY_MAGIC):]))
            else:
                det = checkpoints.loads(blob, DETECTOR_KIND)
        except (checkpoints.CheckpointError, pickle.UnpicklingError, EOFError, ValueError) as e:
            raise InvalidInput(f"not a plantguard detector checkpoint ({e})") from None
        if not isinstance(det, Detector):
            raise InvalidInput(f"checkpoint holds a {type(det).__name__}, not a detector")
        return det


def as_features(x: Any) -> dict[str, float]:
    """Validate a multivariate observation: a mapping of name -> number; missing values become NaN."""
    if not isinstance(x, Mapping):
        raise InvalidInput(f"a multivariate detector needs a mapping of name -> value, got {type(x).__name__}")
    out = {}
    for k, v in x.items():
        out[str(k)] = math.nan if v is None else float(v)
    return out


def squash(z: float, scale: float = 1.0) -> float:
    """Map a non-negative statistic to [0, 1) monotonically: 1 - exp(-z/scale). Used so that every detector's
    score is on the same scale and a threshold like 0.9 means "about 2.3 scale units out"."""
    if not z > 0.0:  # also catches NaN
        return 0.0
    return -math.expm1(-z / scale)
