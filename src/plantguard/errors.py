"""Exception tree for plantguard. Callers never see a driver's exception types.

    PlantguardError
    ├── ConfigError            invalid configuration; carries every problem found (field path + message)
    ├── NotFound               an entity (point, alarm, device...) does not exist
    ├── Conflict               an entity already exists / a state change is not allowed
    ├── InvalidInput           a request or payload that cannot be accepted (malformed, oversize...)
    ├── Overloaded             a bounded queue is full and the caller waited too long (backpressure)
    │   └── ShuttingDown       the pipeline is stopping and takes nothing new
    └── StoreError             the storage backend failed (translated from duckdb/psycopg errors)
        └── StoreUnavailable   the backend cannot be reached or opened
"""

from __future__ import annotations

from dataclasses import dataclass


class PlantguardError(Exception):
    """Base of every error plantguard raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    path: str  # dotted/indexed field path, e.g. "sites[0].areas[1].lines[0].id"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(PlantguardError):
    def __init__(self, problems: list[ConfigProblem], source: str | None = None):
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{head}{len(problems)} configuration error(s):\n{lines}")


class NotFound(PlantguardError):
    pass


class Conflict(PlantguardError):
    pass


class InvalidInput(PlantguardError):
    """`code` classifies the refusal for metrics and dead letters (plantguard.domain.readings.REJECT_CODES)."""

    def __init__(self, message: str = "", *, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code


class Unauthenticated(PlantguardError):
    """No credential, or one that is not valid (unknown, expired, revoked)."""


class Forbidden(PlantguardError):
    """A valid credential without the permission this needs."""


class TooManyAttempts(PlantguardError):
    """Login refused for a while after repeated failures; `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(PlantguardError):
    """A feature this platform runs without (e.g. the alarm engine is disabled)."""


class Overloaded(PlantguardError):
    pass


class ShuttingDown(Overloaded):
    pass


class StoreError(PlantguardError):
    pass


class StoreUnavailable(StoreError):
    pass
