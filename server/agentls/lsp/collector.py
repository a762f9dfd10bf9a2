"""Garbage collection kept out of the event loop's way while the server loads code.

Start-up, a folder's engine build and the model SDK's import create tens of thousands of objects
that live as long as the process (modules, classes, schemas). Allocating them triggers the cyclic
collector's full pass, which holds the interpreter lock for 50-90 ms here, so the event loop stops
that long even when the loading runs on a worker thread: the first delegation of a session stalled
every code action behind it. While loading runs, automatic collection is paused; when the last
loading ends, everything alive is moved to the permanent generation (`gc.freeze`), so later full
passes scan only what the session itself creates. Reference counting still frees as usual.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_loading = 0
_was_enabled = True


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Pause automatic collection for the block (nests, across threads); freeze what was loaded."""
    global _loading, _was_enabled
    with _lock:
        if _loading == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _loading += 1
    try:
        yield
    finally:
        with _lock:
            _loading -= 1
            if _loading == 0:
                gc.freeze()
                if _was_enabled:
                    gc.enable()


def loads_code(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn` run inside `loading()` (for functions handed to a worker thread)."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        with loading():
            return fn(*args, **kwargs)

    return run
