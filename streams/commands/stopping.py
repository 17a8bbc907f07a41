"""SIGINT and SIGTERM for a command that stops cleanly (`streams replay`).

The first signal is recorded and handed to `on_stop(name)`, which must only set flags: a
Python signal handler runs in the main thread between two bytecodes, maybe while that
thread holds a lock. The command then stops at its next check, writes what it has and exits
with 128 + the signal's number. A second signal exits at once, with the same code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator

log = logging.getLogger("streams")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    def __init__(self) -> None:
        self.signal: str | None = None   # the first signal's name
        self.on_stop: Callable[[str], None] | None = None

    @property
    def exit_code(self) -> int:
        assert self.signal is not None
        return 128 + signal.Signals[self.signal].value

    def _handle(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.signal is not None:
            log.warning("second signal (%s): exiting at once", name)
            os._exit(128 + signum)
        self.signal = name
        if self.on_stop is not None:
            self.on_stop(name)


@contextlib.contextmanager
def stopping() -> Iterator[Stop]:
    """The handlers, for the duration of the block (the previous ones restored after)."""
    stop = Stop()
    previous = {}
    try:
        for s in SIGNALS:
            previous[s] = signal.signal(s, stop._handle)
    except ValueError:   # not the main thread (a test calling main() from another): default handling
        pass
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
