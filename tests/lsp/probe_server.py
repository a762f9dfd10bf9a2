"""`agentls serve`, writing the names of every imported module to $AGENTLS_PROBE_MODULES at exit,
and each full garbage collection (its thread, its milliseconds) to $AGENTLS_PROBE_GC when set.

test_startup.py starts the server this way to see which heavy dependencies a session loaded and
whether the collector stopped the server while it loaded them.
"""

import atexit
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

full_collections: list[dict[str, Any]] = []
_started: list[float] = []


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _started.append(time.perf_counter())
    elif _started:
        took = (time.perf_counter() - _started.pop()) * 1000.0
        full_collections.append({"thread": threading.current_thread().name, "ms": took})


def _record() -> None:
    Path(os.environ["AGENTLS_PROBE_MODULES"]).write_text(json.dumps(sorted(sys.modules)))
    if os.environ.get("AGENTLS_PROBE_GC"):
        Path(os.environ["AGENTLS_PROBE_GC"]).write_text(json.dumps(full_collections))


gc.callbacks.append(_on_collection)
atexit.register(_record)

from agentls.cli import main  # noqa: E402 (the hook must be in place first)

sys.exit(main(["serve"]))
