"""The example historian export that `plantguard init` writes next to the example configuration.

A wide CSV as historians export them: local wall-clock timestamps without an offset (Europe/Paris, so it is
imported with --tz Europe/Paris), one column per point named by its full tag, one row a minute over the last 24
hours, so it always lies inside the default raw retention. Seeded: the same values on every machine. Two rows
are broken on purpose (a value that is not a number, one outside the engineering range) to show how refusals
are reported.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

DEVICE = "lyon/packaging/bottling1/feed_pump/plc1"
ZONE = "Europe/Paris"


def write_example(path: str | Path, now_us: int, hours: int = 24) -> int:
    rng = np.random.default_rng(7)
    zone = ZoneInfo(ZONE)
    end = datetime.fromtimestamp(now_us / 1e6, tz=zone).replace(second=0, microsecond=0) - timedelta(minutes=5)
    n = hours * 60
    lines = [f"timestamp,{DEVICE}/flow,{DEVICE}/discharge_pressure,{DEVICE}/motor_current"]
    for i in range(n):
        t = end - timedelta(minutes=n - 1 - i)
        day = math.sin(2 * math.pi * (t.hour * 60 + t.minute) / 1440)
        flow = 42 + 4 * day + rng.normal(0, 0.6)
        pressure = 4.1 + 0.3 * day + rng.normal(0, 0.05)
        current = 21 + 1.5 * day + rng.normal(0, 0.3)
        cells = [f"{flow:.2f}", f"{pressure:.3f}", f"{current:.2f}"]
        if i == n // 3:
            cells[0] = "n/a"  # a cell the historian could not fill
        if i == 2 * n // 3:
            cells[1] = "12.5"  # beyond the engineering range of 0-10 bar
        # wall-clock time without offset: the DST folds are left to the importer, which refuses what is ambiguous
        lines.append(f"{t.replace(tzinfo=None).isoformat(sep=' ')}," + ",".join(cells))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return n
