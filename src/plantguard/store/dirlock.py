"""An exclusive lock on a data directory, so that two processes never write the same files.

The lock is an advisory ``flock`` on ``<dir>/LOCK``: the kernel releases it when the process ends, however it
ends (kill -9 included), so a stale lock file never blocks a restart. The holder's pid is written into the file
for the error message of the process that is refused.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from plantguard.errors import StoreUnavailable


class DirLock:
    def __init__(self, directory: str | Path, what: str = "plantguard process") -> None:
        self.path = Path(directory) / "LOCK"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise StoreUnavailable(f"{self.path.parent} is in use by another {what} (pid {holder}); "
                                   "each one needs a data directory of its own") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None
