"""What hostile-input protection costs (printed, not asserted).

- Redaction per audit string: a typical event field (~60 characters) and a 25 KB source file,
  with the detect-secrets rules loaded (their one-time import is printed too).
- `search` over a generated tree, off the event loop: wall time of the call and the longest gap
  the event loop saw meanwhile (how long it was blocked).
- The anchor bomb: time to refuse it.

    .venv/bin/python tests/benchmarks/bench_hostile.py [--files 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))


def bench_redaction() -> None:
    started = time.perf_counter()
    from agentls.core import redact

    redact.redact_text("load the detector rules now")
    print(f"redaction rules loaded in {(time.perf_counter() - started) * 1000:.0f} ms")
    small = "model call finished turn 3 tool search arguments query='def foo'"
    source = (ROOT / "server" / "agentls" / "core" / "runtime.py").read_text()
    for label, text, rounds in (
        ("60 chars", small, 3000),
        (f"{len(source) // 1024} KB", source, 30),
    ):
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            redact.redact_text(text)
            times.append(time.perf_counter() - t)
        print(
            f"redact_text {label}: median {statistics.median(times) * 1e6:.0f} µs, "
            f"p99 {sorted(times)[int(len(times) * 0.99) - 1] * 1e6:.0f} µs"
        )


async def bench_search(files: int) -> None:
    from agentls.core.tools.sandbox import WorkspaceSandbox
    from agentls.core.tools.workspace import Search

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in range(files):
            folder = root / f"pkg{n % 40}"
            folder.mkdir(exist_ok=True)
            (folder / f"m{n}.py").write_text(("a" * 40 + "!\n") * 50 + f"def f{n}(): pass\n")
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        result = await Search(WorkspaceSandbox(root)).call({"query": "(a+)+$"})
        took = time.perf_counter() - started
        stop.set()
        await tick
        print(
            f"search (a+)+$ over {files} files: {took * 1000:.0f} ms, "
            f"{result.content.splitlines()[0]!r}; longest event-loop gap {max(gaps) * 1000:.1f} ms"
        )


def bench_bomb() -> None:
    from tests.test_hostile_definitions import BOMB

    from agentls.core.definitions import parse_definition_text

    started = time.perf_counter()
    _, errors = parse_definition_text(BOMB, Path("bomb.yaml"))
    took = (time.perf_counter() - started) * 1000
    print(f"anchor bomb ({len(BOMB)} bytes) refused in {took:.1f} ms: {errors[0].message}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    bench_redaction()
    asyncio.run(bench_search(args.files))
    bench_bomb()


if __name__ == "__main__":
    main()
