"""Backing off from a team database whose connects time out, so a host that is gone costs one
connect timeout, not one per call.

A connect refused at once (the server is down, the port closed) costs nothing and is tried again
on the next use, so a server that is back is used at once. A connect that fails slowly (a host
that drops packets, a listener that never answers: libpq waits out `connect_timeout`, 5 s by
default) is remembered for this process: for 1 s after the first such failure, doubling up to
30 s while they go on, every connect to that database is refused at once with the same sentence
and when agentls tries again. Any connect that succeeds forgets it.

Refusals are DatabaseUnavailable, so the ledger keeps the usage of calls that end meanwhile in its
journal and replays it when the database is back, as after any other outage (stores/journal.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agentls.core.stores.db_errors import DatabaseUnavailable

# The first pause after a slow failure, and the longest, in seconds.
FIRST_S = 1.0
MAX_S = 30.0
# A failed connect that took this long costs the caller: remember it (a refusal takes ms).
SLOW_S = 1.0


@dataclass
class _Failure:
    until: float  # the clock's time before which connects are refused
    pause: float  # the pause that set it; the next slow failure doubles it
    error: DatabaseUnavailable


class ConnectBackoff:
    """Per database URL: the last slow connect failure and the pause it earned."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, _Failure] = {}

    def refusal(self, url: str) -> DatabaseUnavailable | None:
        """The error to raise at once instead of connecting, while `url` is in its pause."""
        with self._lock:
            failure = self._failures.get(url)
            if failure is None:
                return None
            left = failure.until - self.clock()
            if left <= 0:
                return None
            return _again(failure.error, left)

    def failed(self, url: str, error: DatabaseUnavailable, took: float) -> DatabaseUnavailable:
        """Remember a connect that failed after `took` seconds; the error to raise for it."""
        if took < SLOW_S:
            return error
        with self._lock:
            now = self.clock()
            before = self._failures.get(url)
            if before is None:
                pause = FIRST_S
            elif now < before.until:
                pause = before.pause  # an attempt begun before the failure it shares was known
            else:
                pause = min(before.pause * 2, MAX_S)
            self._failures[url] = _Failure(now + pause, pause, error)
        return _again(error, pause)

    def succeeded(self, url: str) -> None:
        if self._failures:  # no lock on the common path: nothing to forget
            with self._lock:
                self._failures.pop(url, None)


def _again(error: DatabaseUnavailable, left: float) -> DatabaseUnavailable:
    """The failure's sentence, saying when agentls tries to connect again."""
    seconds = max(1, math.ceil(left))
    return type(error)(
        error.where,
        error.problem,
        f"{error.hint}; agentls tries to connect again in {seconds} s",
    )


# One for the process: the ledger, the audit trail and their background threads share it.
BACKOFF = ConnectBackoff()
