"""Time to the first streamed words: an agent panel over ACP next to an editor over LSP (printed,
not asserted).

Also the time from spawning `agentls acp` to its `initialize` answer.

ACP: from sending `session/prompt` (`/explain` on a file) to the first `agent_message_chunk`.
LSP: from sending `workspace/executeCommand agentls.delegate` (explain, same file) to the first
`agentls/output` notification. Both against tests/rig/scripted_openai.py in its own process,
answering at once; the first prompt of each (imports, model client) is shown apart.

    .venv/bin/python tests/benchmarks/bench_acp.py [--prompts 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "server", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from acp.schema import ClientCapabilities, FileSystemCapabilities  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.benchmarks.bench_lsp import Session, new_workspace, script, scripted_model  # noqa: E402
from tests.lsp.harness import HOME, execute, open_file  # noqa: E402

import acp  # noqa: E402

REPLY = {"text": "".join(f"word{i} " for i in range(40)), "chunks": 40}


class FirstChunk:
    """An ACP client that notes when the first answer chunk of the current prompt arrives."""

    def __init__(self) -> None:
        self.first: asyncio.Event = asyncio.Event()
        self.at = 0.0

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        if update.session_update == "agent_message_chunk" and not self.first.is_set():
            self.at = time.perf_counter()
            self.first.set()

    async def request_permission(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("explain proposes no edits")


async def over_acp(workspace: Path, model: str, prompts: int) -> tuple[float, list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTLS_"))}
    env |= {"OPENAI_BASE_URL": model, "OPENAI_API_KEY": "sk-test", "HOME": str(HOME)}
    panel = FirstChunk()
    app = workspace / "src" / "app.py"
    seconds = []
    spawned = time.perf_counter()
    async with acp.spawn_agent_process(
        panel,  # type: ignore[arg-type]
        sys.executable,
        "-m",
        "agentls",
        "acp",
        "--model",
        "scripted-model",
        env=env,
        cwd=workspace,
    ) as (conn, _process):
        await conn.initialize(
            protocol_version=acp.PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(fs=FileSystemCapabilities()),
        )
        ready = time.perf_counter() - spawned
        session = await conn.new_session(cwd=str(workspace))
        blocks = [
            acp.text_block("/explain what does it do?"),
            acp.resource_link_block(name=app.name, uri=app.as_uri()),
        ]
        for _ in range(prompts):
            script(model, [REPLY])
            panel.first.clear()
            started = time.perf_counter()
            turn = asyncio.ensure_future(conn.prompt(session_id=session.session_id, prompt=blocks))
            await asyncio.wait_for(panel.first.wait(), 30)
            seconds.append(panel.at - started)
            await turn
    return ready, seconds


async def over_lsp(workspace: Path, model: str, prompts: int) -> list[float]:
    settings = {"baseUrl": model, "model": "scripted-model", "apiKey": "sk-test"}
    session, _ = await Session.start(workspace, settings)
    seconds = []
    try:
        uri = open_file(session.client, workspace / "src" / "app.py")
        editor = session.editor
        for _ in range(prompts):
            script(model, [REPLY])
            before = len(editor.outputs)
            started = time.monotonic()  # the harness stamps each agentls/output with monotonic()
            run = asyncio.ensure_future(
                execute(session.client, "agentls.delegate", {"agent": "explain", "uri": uri})
            )
            await editor.wait_until(lambda before=before: len(editor.outputs) > before, 30)
            seconds.append(editor.output_times[before] - started)
            await run
    finally:
        await session.stop()
    return seconds


async def main(prompts: int) -> None:
    with tempfile.TemporaryDirectory(prefix="agentls-bench-acp-") as tmp, scripted_model() as model:
        parent = Path(tmp)
        acp_ready, acp_s = await over_acp(new_workspace(parent, "acp"), model, prompts)
        lsp_s = await over_lsp(new_workspace(parent, "lsp"), model, prompts)

    table = Table(title="request → first streamed words (scripted model, no latency)")
    for column in ("protocol", "first (cold)", "p50", "min", "max", "samples"):
        table.add_column(column, justify="right" if column != "protocol" else "left")
    for name, samples in (
        ("ACP session/prompt → agent_message_chunk", acp_s),
        ("LSP agentls.delegate → agentls/output", lsp_s),
    ):
        steady = samples[1:] or samples
        table.add_row(
            name,
            f"{samples[0] * 1000:.1f} ms",
            f"{statistics.median(steady) * 1000:.1f} ms",
            f"{min(steady) * 1000:.1f} ms",
            f"{max(steady) * 1000:.1f} ms",
            str(len(steady)),
        )
    console = Console(width=120)
    console.print(table)
    console.print(f"`agentls acp`: spawn → initialize answer {acp_ready * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.prompts))
