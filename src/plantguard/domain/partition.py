"""Partition keys: the unit of state one worker owns. Every piece of learned or running state (dedupe
watermarks, alarm states, analytics state) belongs to exactly one partition, named by the first levels of its
path, so that a worker can take a partition over from another by loading that partition's state only.

    partition_key("site1/packaging/line-1/filler/plc/flow", "line") == "site1/packaging/line-1"

A path shorter than the partition level (a line's own path with `by="asset"`) is its own key.
"""

from __future__ import annotations

from typing import Literal

from plantguard.domain.fields import TAG_SEP

PartitionBy = Literal["site", "area", "line", "asset"]
LEVELS: dict[str, int] = {"site": 1, "area": 2, "line": 3, "asset": 4}


def partition_key(path: str, by: PartitionBy = "line") -> str:
    try:
        n = LEVELS[by]
    except KeyError:
        raise ValueError(f"partition_by must be one of {', '.join(LEVELS)} (got {by!r})") from None
    parts = path.split(TAG_SEP, n)
    return TAG_SEP.join(parts[:n])


def in_partition(path: str, key: str) -> bool:
    return path == key or path.startswith(key + TAG_SEP)


ANALYTICS_CHECKPOINT = "analytics"  # a partition's analytics state is the checkpoint "analytics@<key>"


def analytics_checkpoint(key: str) -> str:
    return f"{ANALYTICS_CHECKPOINT}@{key}"
