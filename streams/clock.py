"""Injected clocks: logic asks a clock for the time, never `time.time()` directly."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    """Wall-clock time in seconds since the epoch."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to: for tests and deterministic replays."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = float(when)
