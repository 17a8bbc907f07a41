"""Capped exponential backoff with jitter, for the sinks' reconnects and retries."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff(attempt: int, initial: float, cap: float, rng: Callable[[], float] = random.random,
            *, floor: float = 0.0) -> float:
    """`initial * 2**attempt` capped at `cap`, times a random share in `[floor, 1]` of it:
    `floor=0` is "full jitter" (AWS architecture blog), `floor=0.5` "equal jitter". The
    exponent is bounded, so hours of retries cannot overflow the float."""
    step = min(cap, initial * (2 ** min(attempt, 32)))
    return step * (floor + (1.0 - floor) * rng())
