"""Start-up and the first delegation (printed, not asserted).

1. `initialize`: spawning `agentls serve` and a bare pygls server with one handler
   (tests/rig/bare_pygls.py) alternately, the time from spawn to the answer to `initialize`;
   goal: agentls within 1.3x of the bare server (medians).
2. The first delegation of a session against the second: a fresh `agentls serve`, idle for a
   while after `initialized` (as an editor is while the user reads), then two `agentls.delegate`
   calls against an instant scripted model; goal: the first within 0.15 s of the second.

    .venv/bin/python tests/benchmarks/bench_startup.py [--spawns 10] [--sessions 5] [--idle 3]
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
for entry in (ROOT / "server", ROOT, ROOT / "tests" / "benchmarks"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from bench_lsp import Session, new_workspace, script, scripted_model  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402
from tests.lsp.harness import SERVER_ENV, default_capabilities, execute, open_file, uri_of  # noqa: E402

BARE = [sys.executable, "-m", "tests.rig.bare_pygls"]


async def bare_initialize(workspace: Path) -> float:
    spawned = time.perf_counter()
    client = await ClientServerConfig(server_command=BARE, server_env=SERVER_ENV).start()
    assert isinstance(client, LanguageClient)
    uri = uri_of(workspace)
    await client.initialize_session(
        types.InitializeParams(capabilities=default_capabilities(), root_uri=uri)
    )
    took = time.perf_counter() - spawned
    await client.shutdown_session()
    await client.stop()
    return took


async def initialize_times(
    parent: Path, model: str, spawns: int
) -> tuple[list[float], list[float]]:
    ours, bare = [], []
    settings = {"baseUrl": model, "model": "scripted-model", "apiKey": "sk-test"}
    for i in range(spawns):
        workspace = new_workspace(parent, f"init{i}")
        session, took = await Session.start(workspace, settings)
        ours.append(took)
        await session.stop()
        bare.append(await bare_initialize(workspace))
    return ours, bare


async def delegation_times(
    parent: Path, model: str, sessions: int, idle: float
) -> tuple[list[float], list[float]]:
    first, second = [], []
    settings = {"baseUrl": model, "model": "scripted-model", "apiKey": "sk-test"}
    for i in range(sessions):
        workspace = new_workspace(parent, f"deleg{i}")
        session, _ = await Session.start(workspace, settings)
        await asyncio.sleep(idle)  # the editor sits idle: warm-up may happen now
        uri = open_file(session.client, workspace / "src" / "app.py")
        for times in (first, second):
            script(model, [{"text": "ok"}])
            started = time.perf_counter()
            result = await execute(
                session.client, "agentls.delegate", {"agent": "explain", "goal": "g", "uri": uri}
            )
            times.append(time.perf_counter() - started)
            assert result["status"] == "finished", result
        await session.stop()
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, scripted_model() as model:
        parent = Path(tmp)
        ours, bare = asyncio.run(initialize_times(parent, model, args.spawns))
        first, second = asyncio.run(delegation_times(parent, model, args.sessions, args.idle))
    ours_m, bare_m = statistics.median(ours), statistics.median(bare)
    print(f"initialize, spawned alternately {args.spawns}x (median s):")
    print(
        f"  agentls serve {ours_m:.3f}   bare pygls {bare_m:.3f}   ratio {ours_m / bare_m:.2f}x (goal <= 1.3x)"
    )
    first_m, second_m = statistics.median(first), statistics.median(second)
    print(f"delegation after {args.idle:g} s idle, {args.sessions} sessions (median s):")
    print(
        f"  first {first_m:.3f}   second {second_m:.3f}   "
        f"difference {first_m - second_m:.3f} s (goal <= 0.15 s)"
    )
    print(f"  first, each session: {', '.join(f'{t:.3f}' for t in first)}")


if __name__ == "__main__":
    main()
