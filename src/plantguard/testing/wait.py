"""Waiting for a condition in tests without a timing assumption: poll until it holds, fail after a generous
deadline (a loaded machine is slow, never wrong)."""

from __future__ import annotations

import time


def wait_for(cond, what: str, timeout: float = 60.0, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
