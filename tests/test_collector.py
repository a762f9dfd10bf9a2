"""lsp/collector.py: garbage collection paused while the server loads code, frozen after."""

from __future__ import annotations

import gc
import threading

from agentls.lsp.collector import loading, loads_code


def test_collection_stays_paused_until_the_last_overlapping_loading_ends() -> None:
    assert gc.isenabled()
    inner_started, outer_may_end = threading.Event(), threading.Event()
    seen: list[bool] = []

    @loads_code
    def other_thread() -> None:
        inner_started.set()
        outer_may_end.wait(5)
        seen.append(gc.isenabled())

    with loading():
        worker = threading.Thread(target=other_thread)
        worker.start()
        inner_started.wait(5)
    # This loading ended; the worker's is still running.
    seen.append(gc.isenabled())
    outer_may_end.set()
    worker.join(5)

    assert seen == [False, False]
    assert gc.isenabled()


def test_what_was_loaded_is_frozen_out_of_later_full_collections() -> None:
    gc.unfreeze()
    try:
        with loading():
            loaded = [[i] for i in range(1000)]
        assert gc.get_freeze_count() >= len(loaded)
    finally:
        gc.unfreeze()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    try:
        with loading():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
