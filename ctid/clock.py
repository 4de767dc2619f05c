"""The one clock abstraction: live code reads SystemClock, tests and simulations a VirtualClock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that moves only when told to; whole days run in seconds."""

    def __init__(self, start: float = 1_795_392_000.0) -> None:  # 2026-11-23 00:00 UTC
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += seconds

    def set(self, when: float) -> None:
        if when < self._now:
            raise ValueError("a clock does not go back")
        self._now = when
