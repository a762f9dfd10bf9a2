"""Soak: many runs at a fixed number in flight against the scripted model, over loopback.

Each run is the `research` agent doing one tool call (read_file) and then answering: two streamed
model calls, each reserved and committed in the ledger, every step appended to the audit trail on
disk (WAL, durable when `append` returns). The script checks, and prints:

- every run ended with a closing (terminal) event in the audit trail;
- the budget invariant: the ledger's committed total equals the sum of the runs' usage, and no
  reservation is left;
- memory: RSS after a warm-up, half-way and at the end (it should stay flat);
- CPU per model call: this process' CPU time (agentls, its SQLite threads and the SDK) divided by
  the model calls made, next to the bare `openai` SDK making the same streamed calls at the same
  concurrency against the same server. The goal is within 5 % of the bare SDK at 32 in flight.
  Next to it, the model backend alone (`OpenAIChatModel.complete`, no runtime, ledger or audit)
  making those calls: what agentls' model path costs, apart from its books.

The scripted server runs in a child process, so its CPU is not counted. Nothing is asserted about
speed; the invariants end the script with status 1 when broken.

    .venv/bin/python tests/benchmarks/bench_soak.py               # 1,000 runs, 32 in flight
    .venv/bin/python tests/benchmarks/bench_soak.py --runs 100    # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

MODEL = "scripted-model"
API_KEY = "sk-soak"
AGENT = "research"
TOOL_ARGS = {"path": "src/app.py"}
FINAL = "The totals add up: total() sums the prices and mean() divides by their count."
APP = "def total(prices):\n    return sum(prices)\n\n\ndef mean(values):\n    return sum(values) / len(values)\n"
CALLS_PER_RUN = 2


def responder() -> Any:
    from tests.rig.scripted_openai import turns

    return turns(1, "read_file", TOOL_ARGS, final=FINAL)


def serve(latency: float) -> int:
    """Child process: serve one tool turn then the answer, with a fixed latency, until stdin closes."""
    from tests.rig.scripted_openai import ScriptedOpenAI, serve_until_stdin_closes

    server = ScriptedOpenAI(latency=latency)
    server.responder = responder()
    return serve_until_stdin_closes(server)


def scripted_server(latency: float) -> contextlib.AbstractContextManager[str]:
    """This file's `serve` in a child process; yields its URL."""
    from tests.rig.scripted_openai import server_process

    return server_process(Path(__file__).resolve(), "--serve", "--latency", str(latency), cwd=ROOT)


def make_workspace() -> Path:
    root = Path(tempfile.mkdtemp(prefix="agentls-soak-"))
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text(APP)
    return root


def make_runtime(workspace: Path, url: str) -> Any:
    from agentls.core.engine import EngineSettings, build_runtime

    return build_runtime(workspace, EngineSettings(model=MODEL, base_url=url, api_key=API_KEY))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class SoakResult:
    runs: int
    in_flight: int
    wall_s: float
    cpu_s: float
    calls: int
    rss_mb: list[tuple[int, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def soak(runtime: Any, runs: int, in_flight: int, *, sample_every: int = 0) -> SoakResult:
    """`runs` delegations of the research agent, at most `in_flight` at once; invariants checked."""
    slot = asyncio.Semaphore(in_flight)
    rss: list[tuple[int, float]] = []
    done = 0

    async def one(n: int) -> Any:
        nonlocal done
        result = await runtime.delegate(AGENT, f"Do the totals add up? (run {n})", slot=slot)
        done += 1
        if sample_every and done % sample_every == 0:
            rss.append((done, rss_mb()))
        return result

    used_before = runtime.budgeter.snapshot().used
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(one(n) for n in range(runs)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    calls = len(results) * CALLS_PER_RUN
    outcome = SoakResult(runs, in_flight, wall, cpu, calls, rss)
    outcome.problems = check_invariants(runtime, results, used_before)
    return outcome


def check_invariants(runtime: Any, results: list[Any], used_before: int = 0) -> list[str]:
    """What is wrong with the books after these runs (nothing, when the invariants hold).

    `used_before` is the ledger's committed total before the runs started.
    """
    problems: list[str] = []
    ids = {r.run_id for r in results}
    unfinished = [r for r in results if r.status.value != "finished"]
    if unfinished:
        problems.append(f"{len(unfinished)} runs did not finish, e.g. {unfinished[0].error}")
    closing = {e.run_id for e in runtime.audit.runs() if e.run_id in ids}
    if closing != ids:
        problems.append(f"{len(ids - closing)} runs have no closing event in the audit trail")
    snapshot = runtime.budgeter.snapshot()
    spent = sum(r.usage.total for r in results)
    if snapshot.used - used_before != spent:
        problems.append(
            f"the ledger gained {snapshot.used - used_before} tokens, the runs used {spent}"
        )
    if snapshot.reserved:
        problems.append(f"{snapshot.reserved} tokens are still reserved")
    for r in results:
        if runtime.budgeter.run_usage(r.run_id) != r.usage:
            problems.append(f"run {r.run_id}: the ledger's run scope differs from its usage")
            break
    return problems


# The floor: the same two streamed calls per run through the bare SDK


async def bare_soak(url: str, runtime: Any, runs: int, in_flight: int) -> tuple[float, float]:
    """(wall, cpu) of the same calls made by a bare AsyncOpenAI at the same concurrency."""
    from openai import AsyncOpenAI

    from agentls.core.tools.workspace import workspace_tools

    definition = runtime.resolve_agent(AGENT)
    tools = workspace_tools(runtime.sandbox, definition.name)
    specs = [tools[name].spec.to_openai() for name in definition.tools if name in tools]
    first = [
        {"role": "system", "content": definition.instructions},
        {"role": "user", "content": "Goal: Do the totals add up?"},
    ]
    client = AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0)
    slot = asyncio.Semaphore(in_flight)

    async def call(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=1024,
            tools=specs,
            stream=True,
            stream_options={"include_usage": True},
        )
        tool: dict[str, Any] | None = None
        async for chunk in stream:
            for choice in chunk.choices:
                for tc in choice.delta.tool_calls or []:
                    tool = tool or {"id": tc.id, "name": "", "arguments": ""}
                    if tc.function and tc.function.name:
                        tool["name"] += tc.function.name
                    if tc.function and tc.function.arguments:
                        tool["arguments"] += tc.function.arguments
        return tool

    async def one() -> None:
        async with slot:
            history = [dict(m) for m in first]
            tool = await call(history)
            assert tool is not None
            history.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": tool["id"],
                            "type": "function",
                            "function": {"name": tool["name"], "arguments": tool["arguments"]},
                        }
                    ],
                }
            )
            history.append({"role": "tool", "tool_call_id": tool["id"], "content": APP})
            await call(history)

    await asyncio.gather(*(one() for _ in range(min(in_flight, runs))))  # warm-up
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(runs)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await client.close()
    return wall, cpu


async def backend_soak(url: str, runtime: Any, runs: int, in_flight: int) -> tuple[float, float]:
    """(wall, cpu) of the same calls made by agentls' model backend alone, same concurrency."""
    from agentls.core.llm import ChatRequest, ModelSettings
    from agentls.core.llm_openai import OpenAIChatModel
    from agentls.core.prompts import assistant_message
    from agentls.core.tools.workspace import workspace_tools

    definition = runtime.resolve_agent(AGENT)
    tools = workspace_tools(runtime.sandbox, definition.name)
    specs = [tools[name].spec for name in definition.tools if name in tools]
    first = [
        {"role": "system", "content": definition.instructions},
        {"role": "user", "content": "Goal: Do the totals add up?"},
    ]
    model = OpenAIChatModel(
        ModelSettings(model=MODEL, base_url=url, api_key=API_KEY, max_retries=0)
    )
    slot = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with slot:
            history = [dict(m) for m in first]
            response = await model.complete(ChatRequest(history, 1024, specs), lambda _: None)
            (call,) = response.tool_calls
            history.append(assistant_message(response))
            history.append({"role": "tool", "tool_call_id": call.id, "content": APP})
            await model.complete(ChatRequest(history, 1024, specs), lambda _: None)

    await asyncio.gather(*(one() for _ in range(min(in_flight, runs))))  # warm-up
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(runs)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await model.aclose()
    return wall, cpu


async def main_async(args: argparse.Namespace) -> int:
    with scripted_server(args.latency) as url:
        workspace = make_workspace()
        runtime = make_runtime(workspace, url)
        try:
            warm = await soak(runtime, min(args.in_flight, args.runs), args.in_flight)
            rss_start = rss_mb()
            sample = max(1, args.runs // 4)
            result = await soak(runtime, args.runs, args.in_flight, sample_every=sample)
            rss_end = rss_mb()
            backend_wall, backend_cpu = await backend_soak(url, runtime, args.runs, args.in_flight)
            bare_wall, bare_cpu = await bare_soak(url, runtime, args.runs, args.in_flight)
        finally:
            await runtime.aclose()
    calls = args.runs * CALLS_PER_RUN
    ours, bare = result.cpu_s / calls * 1000, bare_cpu / calls * 1000
    backend = backend_cpu / calls * 1000
    print(
        f"soak: {args.runs} runs ({calls} model calls), {args.in_flight} in flight, "
        f"{args.latency * 1000:.0f} ms model latency, audit on disk at {workspace}"
    )
    print(f"  wall              agentls {result.wall_s:7.2f} s    bare SDK {bare_wall:7.2f} s")
    print(
        f"  CPU per call      agentls {ours:7.3f} ms   bare SDK {bare:7.3f} ms   "
        f"overhead {ours - bare:+.3f} ms ({(ours / bare - 1) * 100:+.1f} %; goal within 5 %)"
    )
    print(
        f"  model call alone  backend {backend:7.3f} ms   bare SDK {bare:7.3f} ms   "
        f"({(backend / bare - 1) * 100:+.1f} %; wall {backend_wall:.2f} s)"
    )
    print(
        f"  RSS               start {rss_start:.1f} MB   end {rss_end:.1f} MB   "
        f"samples {', '.join(f'{n}:{mb:.1f}' for n, mb in result.rss_mb)}"
    )
    problems = warm.problems + result.problems
    if problems:
        print("  INVARIANTS BROKEN: " + "; ".join(problems))
        return 1
    print(
        f"  invariants        {args.runs} closing events; ledger = sum of run usage; "
        "no reservation left"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05, help="model latency in seconds")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.latency)
    os.environ.pop("OPENAI_API_KEY", None)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
