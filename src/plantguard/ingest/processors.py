"""The processor plug-in interface. Processors see every accepted batch after it is durably written.

The alarm engine is the first; analytics and security plug in the same way. A processor must be fast (it runs
on the pipeline's writer thread) and must not raise: errors are caught, counted and logged by the pipeline.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from plantguard.domain.readings import PointBatch


@runtime_checkable
class Processor(Protocol):
    name: str

    def on_batch(self, batch: PointBatch, now: int) -> None:
        """`batch` holds the readings just stored, sorted by (pid, ts). Arrays must not be modified."""

    def on_tick(self, now: int) -> None:
        """Called about once per tick interval even when no data flows (stale/offline detection)."""

    def close(self) -> None: ...
