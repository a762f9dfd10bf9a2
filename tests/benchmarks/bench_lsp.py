"""What the language server costs an editor (printed, not asserted).

1. Time from spawning `agentls serve` to the answer to `initialize`.
2. Code-action latency, p50 and p99, idle and while 16 runs stream output (goal: p99 < 15 ms), and
   cold: code actions sent from the very first delegation of a fresh session on, while its engine
   is built (imports, databases, crash recovery) and 16 runs start and stream.
3. Messages sent to the client per second per streaming run, agentls/output alone and all of them
   (goal: at most 20 agentls/output a second per run), and whether the output arrived whole.
4. Cancel: time from the editor's cancel (the progress's cancel button, `$/cancelRequest` on the
   command) to the command's answer, the run recorded as cancelled, while the model still streams
   (goal: well under a second).

The model is tests/rig/scripted_openai.py in its own process (so its streaming does not compete
with this client for the interpreter), streaming about 200 deltas a second per run.

    .venv/bin/python tests/benchmarks/bench_lsp.py [--spawns 10] [--runs 16] [--actions 400]
        [--repeat 3] [--cancels 10] [--profile DIR]

`--repeat` runs the cold and loaded cases again (each repetition printed beside the idle case of
the same moment, then pooled); `--profile DIR` records each server with py-spy (raw format).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

import psutil  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.lsp.harness import (  # noqa: E402
    APP,
    SERVER_COMMAND,
    SERVER_ENV,
    Editor,
    default_capabilities,
    execute,
    open_file,
    register_editor,
    uri_of,
)

# Each run streams this many deltas, 5 ms apart: about 200 deltas a second for about 6 s.
DELTAS = 1200
DELTA_DELAY = 0.005


@contextlib.contextmanager
def scripted_model() -> Iterator[str]:
    """The scripted OpenAI-compatible server as a subprocess; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.rig.scripted_openai", "--port", "0", "--exit-on-stdin-eof"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("URL "):
            raise RuntimeError(f"the scripted model did not start: {line!r}")
        yield line.split()[1]
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(10)


def script(url: str, replies: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        url.removesuffix("/v1") + "/_script",
        data=json.dumps(replies).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# `--profile DIR` wraps each server in py-spy (raw samples per session in DIR).
PROFILE: Path | None = None


def server_command(name: str) -> list[str]:
    if PROFILE is None:
        return SERVER_COMMAND
    py_spy = Path(sys.executable).parent / "py-spy"
    out = PROFILE / f"{name}.txt"
    record = ["record", "-r", "200", "-f", "raw", "--threads", "-o", str(out), "--"]
    return [str(py_spy), *record, *SERVER_COMMAND]


class Session:
    """A client attached to a fresh `agentls serve`, counting every message it receives."""

    def __init__(self, client: LanguageClient, editor: Editor, workspace: Path) -> None:
        self.client = client
        self.editor = editor
        self.workspace = workspace
        self.received: list[tuple[float, str]] = []  # (monotonic time, method)
        server = client._server  # type: ignore[attr-defined]
        self._process = psutil.Process(server.pid) if server is not None else None

    @property
    def process(self) -> psutil.Process | None:
        """The server process (py-spy's child under `--profile`)."""
        if PROFILE is not None and self._process is not None:
            return self._process.children()[0]
        return self._process

    @classmethod
    async def start(cls, workspace: Path, settings: dict[str, Any]) -> tuple[Session, float]:
        """Spawn, initialize; returns the session and the seconds from spawn to the answer."""
        spawned = time.perf_counter()
        client = await ClientServerConfig(
            server_command=server_command(f"{workspace.parent.name}-{workspace.name}"),
            server_env=SERVER_ENV,
        ).start()
        assert isinstance(client, LanguageClient)
        editor = Editor()
        register_editor(client, editor)
        session = cls(client, editor, workspace)
        session._count_messages()
        uri = uri_of(workspace)
        await client.initialize_session(
            types.InitializeParams(
                capabilities=default_capabilities(),
                root_uri=uri,
                workspace_folders=[types.WorkspaceFolder(uri=uri, name="ws")],
                initialization_options={"settings": settings},
            )
        )
        return session, time.perf_counter() - spawned

    def _count_messages(self) -> None:
        protocol = self.client.protocol
        handle = protocol.handle_message

        def counting(message: Any) -> Any:
            method = getattr(message, "method", None)
            if method is not None:
                self.received.append((time.monotonic(), method))
            return handle(message)

        protocol.handle_message = counting  # type: ignore[method-assign]

    async def stop(self) -> None:
        await self.client.shutdown_session()
        await self.client.stop()

    async def code_action_ms(self, uri: str) -> float:
        started = time.perf_counter()
        await self.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(
                    start=types.Position(line=0, character=0),
                    end=types.Position(line=4, character=0),
                ),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        return (time.perf_counter() - started) * 1000.0


def new_workspace(parent: Path, name: str) -> Path:
    root = parent / name
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP)
    return root.resolve()


async def spawn_to_initialize(parent: Path, model: str, spawns: int) -> list[float]:
    seconds = []
    for i in range(spawns):
        settings = {"baseUrl": model, "model": "scripted-model", "apiKey": "sk-test"}
        session, took = await Session.start(new_workspace(parent, f"spawn{i}"), settings)
        seconds.append(took)
        await session.stop()
    return seconds


async def under_load(parent: Path, model: str, runs: int, actions: int) -> dict[str, Any]:
    settings = {
        "baseUrl": model,
        "model": "scripted-model",
        "apiKey": "sk-test",
        "maxParallel": max(runs, 8),
        "maxOutputTokens": 8192,
    }
    session, _ = await Session.start(new_workspace(parent, "load"), settings)
    try:
        uri = open_file(session.client, session.workspace / "src" / "app.py")
        await session.code_action_ms(uri)  # the first request builds the engine: not timed
        idle = [await session.code_action_ms(uri) for _ in range(actions)]

        text = "".join(f"token{i} " for i in range(DELTAS))
        reply = {"text": text, "chunks": DELTAS, "chunk_delay": DELTA_DELAY}
        script(model, [reply] * runs)
        arguments = {"agent": "explain", "uri": uri}
        process = session.process
        assert process is not None
        cpu_start = process.cpu_times()
        tasks = [
            asyncio.ensure_future(execute(session.client, "agentls.delegate", arguments))
            for _ in range(runs)
        ]
        editor = session.editor
        await editor.wait_until(lambda: len({o["runId"] for o in editor.outputs}) == runs, 30)
        loaded = []
        cpu_before, wall_before = process.cpu_times(), time.monotonic()
        while len(loaded) < actions and not any(t.done() for t in tasks):
            loaded.append(await session.code_action_ms(uri))
            await asyncio.sleep(0.005)  # a user's lightbulb requests, not a tight loop
        cpu_after, wall_after = process.cpu_times(), time.monotonic()
        server_cpu = (
            (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        ) / (wall_after - wall_before)
        results = await asyncio.gather(*tasks)
        cpu_end = process.cpu_times()
    finally:
        await session.stop()
    # Server CPU per streamed delta over the runs' whole life: less sensitive than latency to
    # what else the machine runs.
    cpu_per_delta = ((cpu_end.user + cpu_end.system) - (cpu_start.user + cpu_start.system)) / (
        runs * DELTAS
    )

    per_run = []
    for result in results:
        run_id = result["runId"]
        outputs = [
            t
            for t, o in zip(editor.output_times, editor.outputs, strict=True)
            if o["runId"] == run_id
        ]
        seconds = result["durationMs"] / 1000.0
        per_run.append(
            {
                "outputs_per_s": len(outputs) / seconds,
                "busiest_second": max(
                    sum(1 for t in outputs if start <= t < start + 1.0) for start in outputs
                ),
                "whole": editor.output_text(run_id) == result["text"] == text,
                "seconds": seconds,
            }
        )
    # Every message while the runs streamed: output, events, log lines, progress, budget.
    first, last = min(editor.output_times), max(editor.output_times)
    streaming = [m for t, m in session.received if first <= t <= last]
    return {
        "idle": idle,
        "loaded": loaded,
        "per_run": per_run,
        "all_messages_per_s": len(streaming) / (last - first) / runs,
        "server_cpu": server_cpu,
        "cpu_per_delta_us": cpu_per_delta * 1e6,
        "methods": sorted(set(streaming)),
    }


async def cold_start(parent: Path, model: str, runs: int, actions: int) -> list[float]:
    """Code actions from the first delegation of a fresh session on: nothing was built before."""
    settings = {
        "baseUrl": model,
        "model": "scripted-model",
        "apiKey": "sk-test",
        "maxParallel": max(runs, 8),
        "maxOutputTokens": 8192,
    }
    session, _ = await Session.start(new_workspace(parent, "cold"), settings)
    try:
        uri = open_file(session.client, session.workspace / "src" / "app.py")
        text = "".join(f"token{i} " for i in range(DELTAS // 4))
        script(model, [{"text": text, "chunks": DELTAS // 4, "chunk_delay": DELTA_DELAY}] * runs)
        arguments = {"agent": "explain", "uri": uri}
        tasks = [
            asyncio.ensure_future(execute(session.client, "agentls.delegate", arguments))
            for _ in range(runs)
        ]
        samples = []
        while len(samples) < actions and not all(t.done() for t in tasks):
            samples.append(await session.code_action_ms(uri))
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
    finally:
        await session.stop()
    return samples


async def cancel_to_answer(parent: Path, model: str, tries: int) -> dict[str, list[float]]:
    """Seconds from the editor's cancel to the command's answer (the run ended, its end recorded),
    for each way an editor cancels, while the model streams a long answer."""
    settings = {"baseUrl": model, "model": "scripted-model", "apiKey": "sk-test"}
    session, _ = await Session.start(new_workspace(parent, "cancel"), settings)
    client, editor = session.client, session.editor
    seconds: dict[str, list[float]] = {"progress cancel button": [], "$/cancelRequest": []}
    try:
        uri = open_file(client, session.workspace / "src" / "app.py")
        text = "".join(f"token{i} " for i in range(DELTAS))
        reply = {"text": text, "chunks": DELTAS, "chunk_delay": DELTA_DELAY}
        for i in range(tries):
            for way, took in seconds.items():
                script(model, [reply])
                known = set(client.progress_reports)
                streamed = len(editor.outputs)
                msg_id = f"bench-{i}-{len(took)}-{way}"
                command = asyncio.ensure_future(
                    client.protocol.send_request_async(
                        types.WORKSPACE_EXECUTE_COMMAND,
                        types.ExecuteCommandParams(
                            command="agentls.delegate",
                            arguments=[{"agent": "explain", "uri": uri}],
                        ),
                        msg_id=msg_id,
                    )
                )
                await editor.wait_until(lambda n=streamed: len(editor.outputs) > n, 30)
                run_id = editor.outputs[-1]["runId"]
                started = time.perf_counter()
                if way == "$/cancelRequest":
                    client.cancel_request(types.CancelParams(id=msg_id))
                    with contextlib.suppress(Exception):  # answered with RequestCancelled
                        await command
                    await editor.wait_until(lambda r=run_id: "cancelled" in editor.kinds(r), 30)
                else:
                    (token,) = set(client.progress_reports) - known
                    client.window_work_done_progress_cancel(
                        types.WorkDoneProgressCancelParams(token=token)
                    )
                    result = await command
                    assert result["status"] == "cancelled", result
                took.append(time.perf_counter() - started)
    finally:
        await session.stop()
    return seconds


async def main(spawns: int, runs: int, actions: int, repeat: int, cancels: int) -> None:
    console = Console()
    colds: list[list[float]] = []
    loads: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="agentls-bench-") as tmp, scripted_model() as model:
        parent = Path(tmp)
        spawn = await spawn_to_initialize(parent, model, spawns)
        for i in range(repeat):
            colds.append(await cold_start(parent / f"r{i}", model, runs, actions))
            loads.append(await under_load(parent / f"r{i}", model, runs, actions))
        cancelled = await cancel_to_answer(parent, model, cancels)

    table = Table(title="agentls serve: start-up")
    for column in ("measure", "p50", "min", "max", "samples"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row(
        "spawn → initialize answer",
        f"{statistics.median(spawn) * 1000:.0f} ms",
        f"{min(spawn) * 1000:.0f} ms",
        f"{max(spawn) * 1000:.0f} ms",
        str(len(spawn)),
    )
    console.print(table)

    # Timings on a shared machine are noisy: each repetition is its own row (idle beside the
    # loaded cases of the same moment), then all repetitions pooled.
    table = Table(title=f"textDocument/codeAction latency (goal: p99 < 15 ms under {runs} runs)")
    for column in ("load", "p50", "p95", "p99", "max", "samples"):
        table.add_column(column, justify="right" if column != "load" else "left")
    cases = (
        (f"cold: first {runs} delegations start", colds),
        ("idle", [lo["idle"] for lo in loads]),
        (f"{runs} runs streaming", [lo["loaded"] for lo in loads]),
    )
    for name, per_repeat in cases:
        rows = [(f"{name} #{i + 1}", s) for i, s in enumerate(per_repeat)] if repeat > 1 else []
        rows.append((name if repeat == 1 else f"{name}, all", [x for s in per_repeat for x in s]))
        for label, samples in rows:
            table.add_row(
                label,
                f"{percentile(samples, 0.5):.2f} ms",
                f"{percentile(samples, 0.95):.2f} ms",
                f"{percentile(samples, 0.99):.2f} ms",
                f"{max(samples):.2f} ms",
                str(len(samples)),
            )
        table.add_section()
    console.print(table)
    cpu = ", ".join(f"{lo['server_cpu']:.0%}" for lo in loads)
    per_delta = ", ".join(f"{lo['cpu_per_delta_us']:.0f} µs" for lo in loads)
    console.print(
        f"The server process used {cpu} of one core while {runs} runs streamed: "
        f"{per_delta} of CPU per model delta (whole runs)."
    )
    load = loads[-1]

    per_run = load["per_run"]
    table = Table(title=f"messages to the client per streaming run ({runs} runs, goal ≤ 20/s)")
    for column in ("measure", "mean", "max"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    rates = [r["outputs_per_s"] for r in per_run]
    busiest = [r["busiest_second"] for r in per_run]
    table.add_row("agentls/output per second", f"{statistics.mean(rates):.1f}", f"{max(rates):.1f}")
    table.add_row(
        "agentls/output in the busiest second", f"{statistics.mean(busiest):.1f}", str(max(busiest))
    )
    table.add_row("all messages per second, per run", f"{load['all_messages_per_s']:.1f}", "")
    table.add_row(
        "model deltas per second, per run",
        f"{DELTAS / statistics.mean(r['seconds'] for r in per_run):.0f}",
        "",
    )
    table.add_row(
        "runs whose output arrived whole", f"{sum(r['whole'] for r in per_run)}/{runs}", ""
    )
    console.print(table)

    table = Table(title="cancel → the command's answer, the model still streaming (goal ≪ 1 s)")
    for column in ("editor's cancel", "p50", "max", "samples"):
        table.add_column(column, justify="right" if column != "editor's cancel" else "left")
    for way, took in cancelled.items():
        table.add_row(
            way,
            f"{statistics.median(took) * 1000:.0f} ms",
            f"{max(took) * 1000:.0f} ms",
            str(len(took)),
        )
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=10)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--actions", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=1, help="cold and loaded cases, N times")
    parser.add_argument("--cancels", type=int, default=10, help="cancels of each kind timed")
    parser.add_argument("--profile", type=Path, help="record each server with py-spy into DIR")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE = args.profile.resolve()
    asyncio.run(main(args.spawns, args.runs, args.actions, args.repeat, args.cancels))
