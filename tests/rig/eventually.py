"""Waiting for something a test causes, with a deadline: the one way tests wait.

`eventually(check)` polls `check` until it returns something truthy and returns that; past the
deadline it fails the test with what it was waiting for, instead of hanging the suite.
`aeventually` is the same for async tests (the event loop keeps running while it waits).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Long enough for a loaded CI machine; a regression fails here instead of hanging.
DEADLINE = 30.0


def eventually(
    check: Callable[[], T], what: str = "the condition", *, timeout: float = DEADLINE
) -> T:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"gave up after {timeout:g} s waiting for {what}"
        time.sleep(0.005)
    return value


async def aeventually(
    check: Callable[[], T], what: str = "the condition", *, timeout: float = DEADLINE
) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := check()):
        assert asyncio.get_running_loop().time() < deadline, (
            f"gave up after {timeout:g} s waiting for {what}"
        )
        await asyncio.sleep(0.01)
    return value
