"""Start-up: `initialize` answers with every command (how soon: tests/benchmarks/bench_lsp.py); then, while the editor is idle, the model client a first
run needs is prepared in the background, and the other heavy imports (MCP, the embedded model) wait
until a run needs them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from tests.lsp.harness import (
    SERVER_ENV,
    Editor,
    default_capabilities,
    execute,
    lsp_range,
    open_file,
    register_editor,
    uri_of,
)
from tests.rig.scripted_openai import ScriptedOpenAI, Text

PROBE = Path(__file__).with_name("probe_server.py")
HEAVY = ("openai", "llama_cpp", "mcp")
COMMANDS = [
    "agentls.delegate",
    "agentls.delegateParallel",
    "agentls.createAgent",
    "agentls.cancel",
    "agentls.listAgents",
    "agentls.budget",
    "agentls.audit",
]


class Probe:
    """A server started through probe_server.py; `modules()` once it has exited."""

    def __init__(self, client: LanguageClient, modules_file: Path) -> None:
        self.client = client
        self.modules_file = modules_file
        self.gc_file = modules_file.with_name("full_collections.json")
        self.editor = Editor()
        register_editor(client, self.editor)

    async def initialize(self, workspace: Path, model: ScriptedOpenAI) -> types.InitializeResult:
        uri = uri_of(workspace)
        return await self.client.initialize_session(
            types.InitializeParams(
                capabilities=default_capabilities(),
                root_uri=uri,
                workspace_folders=[types.WorkspaceFolder(uri=uri, name="ws")],
                initialization_options={
                    "settings": {
                        "baseUrl": model.url,
                        "model": "scripted-model",
                        "apiKey": "sk-test",
                    }
                },
            )
        )

    async def exit(self) -> None:
        await self.client.shutdown_session()

    def full_collections(self) -> list[dict[str, Any]]:
        """Each full garbage collection of the session: its thread and milliseconds."""
        collections: list[dict[str, Any]] = json.loads(self.gc_file.read_text())
        return collections

    def heavy_modules(self) -> list[str]:
        modules: list[str] = json.loads(self.modules_file.read_text())
        return [m for m in modules if m.split(".")[0] in HEAVY]


@pytest.fixture
async def probe(tmp_path: Path) -> AsyncIterator[Probe]:
    modules_file = tmp_path / "modules.json"
    config = ClientServerConfig(
        server_command=[sys.executable, str(PROBE)],
        server_env=SERVER_ENV
        | {
            "AGENTLS_PROBE_MODULES": str(modules_file),
            "AGENTLS_PROBE_GC": str(modules_file.with_name("full_collections.json")),
        },
    )
    client = await config.start()
    try:
        yield Probe(client, modules_file)  # type: ignore[arg-type]
    finally:
        server = client._server  # type: ignore[attr-defined]
        if server is not None and server.returncode is None:  # the test failed before exit
            server.terminate()
        await client.stop()


async def test_initialize_offers_every_command(
    probe: Probe, workspace: Path, model: ScriptedOpenAI
) -> None:
    # How soon it answers is tests/benchmarks/bench_lsp.py's first table.
    result = await probe.initialize(workspace, model)

    caps = result.capabilities
    assert caps.execute_command_provider is not None
    assert sorted(caps.execute_command_provider.commands) == sorted(COMMANDS)
    assert isinstance(caps.code_action_provider, types.CodeActionOptions)
    assert list(caps.code_action_provider.code_action_kinds or []) == ["refactor.agentls"]
    assert result.server_info is not None and result.server_info.name == "agentls"
    await probe.exit()


async def test_neither_mcp_nor_the_embedded_model_loads_until_a_run_needs_one(
    probe: Probe, workspace: Path, model: ScriptedOpenAI
) -> None:
    await probe.initialize(workspace, model)
    client = probe.client
    # Everything short of a run: the engine is built, nothing calls a model.
    uri = open_file(client, workspace / "src" / "app.py")
    await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=0, character=0), end=types.Position(line=2, character=0)
            ),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    await execute(client, "agentls.listAgents")
    await execute(client, "agentls.budget")
    await execute(client, "agentls.audit")
    await probe.exit()

    # The OpenAI-compatible client may be prepared already (the warm-up after `initialized`).
    assert {m.split(".")[0] for m in probe.heavy_modules()} <= {"openai"}


async def first_review(probe: Probe, workspace: Path, model: ScriptedOpenAI) -> dict[str, Any]:
    """Start the server, run `review` on the first lines of app.py, exit; the run's result."""
    await probe.initialize(workspace, model)
    model.enqueue(Text("fine"))
    arguments: dict[str, Any] = {
        "agent": "review",
        "uri": uri_of(workspace / "src" / "app.py"),
        "range": lsp_range((0, 0), (2, 0)),
    }
    result: dict[str, Any] = await execute(probe.client, "agentls.delegate", arguments)
    await probe.exit()
    return result


async def test_the_first_run_loads_the_model_sdk(
    probe: Probe, workspace: Path, model: ScriptedOpenAI
) -> None:
    result = await first_review(probe, workspace, model)

    assert result["status"] == "finished"
    loaded = {m.split(".")[0] for m in probe.heavy_modules()}
    assert "openai" in loaded
    assert "llama_cpp" not in loaded, "the embedded model is not needed for an OpenAI-style model"


async def test_loading_the_server_engine_and_model_sdk_stops_nothing_for_a_full_collection(
    probe: Probe, workspace: Path, model: ScriptedOpenAI
) -> None:
    """A full pass of the garbage collector holds the interpreter lock (50-90 ms after the SDK's
    imports), stopping the event loop even when a worker thread triggers it: none may run while
    the server starts, builds the folder's engine and imports the model SDK."""
    result = await first_review(probe, workspace, model)

    assert result["status"] == "finished"
    assert "openai" in {m.split(".")[0] for m in probe.heavy_modules()}
    assert probe.full_collections() == []
