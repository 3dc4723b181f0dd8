"""One partition's state, read from the store: what a worker loads to take that partition over from another
(plantguard.domain.partition). Nothing here reads the running writer's memory, so another process reading the
same store gets the same answer.

    snap = svc.partitions.snapshot("site1/packaging/line-1")
    snap.watermarks          # tag -> newest stored ts (the dedupe watermark)
    snap.alarms              # the partition's alarm records (states, acknowledgements, shelving)
    snap.analytics           # the partition's analytics checkpoint (bytes) or None
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plantguard.domain.alarms import AlarmRecord
from plantguard.domain.partition import analytics_checkpoint, in_partition, partition_key
from plantguard.services._base import CoreService
from plantguard.store.protocols import AlarmStore, CheckpointStore, ReadingsStore


@dataclass(frozen=True)
class PartitionSnapshot:
    key: str
    watermarks: dict[str, int] = field(default_factory=dict)
    alarms: tuple[AlarmRecord, ...] = ()
    analytics: bytes | None = None


class PartitionService(CoreService):
    STORES = (ReadingsStore, AlarmStore, CheckpointStore)

    def keys(self) -> list[str]:
        """The partition keys of the current model (every point's and asset's), sorted."""
        by = self.cfg.ingest.partition_by
        return sorted({partition_key(r.tag, by) for r in self.index.points()} |
                      {partition_key(r.path, by) for r in self.index.assets()})

    def of(self, path: str) -> str:
        return partition_key(path, self.cfg.ingest.partition_by)

    def snapshot(self, key: str) -> PartitionSnapshot:
        pid, ts, _v, _q = self.store.watermarks()
        marks = {}
        for p, t in zip(pid.tolist(), ts.tolist()):
            try:
                tag = self.registry.tag(int(p))
            except (KeyError, IndexError):
                continue  # a point id the registry no longer names
            if in_partition(tag, key):
                marks[tag] = int(t)
        alarms = tuple(r for r in self.store.load_alarms() if in_partition(r.tag, key))
        return PartitionSnapshot(key, marks, alarms, self.store.load_checkpoint(analytics_checkpoint(key)))
