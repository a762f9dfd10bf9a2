"""One pytest-lsp client per test: `agentls serve` on a fresh workspace, talking to a scripted model.

A test asks for `client` (initialized, with the workspace open as its root) and, when it needs
them, `model` (the ScriptedOpenAI the server talks to), `editor` (what the server sent: custom
notifications, applyEdit requests, registrations) and `workspace`. A module changes how the
editor behaves by overriding the `settings`, `editor_settings` or `capabilities` fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from tests.lsp.harness import (
    APP,
    SERVER_COMMAND,
    SERVER_ENV,
    WAIT,
    Editor,
    default_capabilities,
    execute,
    lsp_range,
    open_file,
    open_session,
    uri_of,
)
from tests.rig.scripted_openai import ScriptedOpenAI

# Tests import the helpers from here or from tests.lsp.harness.
__all__ = ["WAIT", "Editor", "default_capabilities", "execute", "lsp_range", "open_file", "uri_of"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP)
    return root.resolve()


@pytest.fixture
def settings(model: ScriptedOpenAI, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The `settings` of initializationOptions; indirect parametrization adds to them.

    The test workspace is trusted (its definitions load) unless a test says otherwise.
    """
    extra = getattr(request, "param", {})
    base = {"baseUrl": model.url, "model": "scripted-model", "apiKey": "sk-test"}
    return {**base, "trustWorkspace": True, **extra}


@pytest.fixture
def initialization_options(
    settings: dict[str, Any], request: pytest.FixtureRequest
) -> dict[str, Any]:
    """`{"settings": settings}`; parametrized indirectly with "agentls" or "section" for the
    other forms the server accepts."""
    form = getattr(request, "param", "settings")
    return settings if form == "section" else {form: settings}


@pytest.fixture
def editor_settings() -> dict[str, Any]:
    """The `agentls` section the editor answers workspace/configuration with."""
    return {}


@pytest.fixture
def capabilities() -> types.ClientCapabilities:
    return default_capabilities()


@pytest.fixture
def editor() -> Editor:
    return Editor()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def client(
    lsp_client: LanguageClient,
    workspace: Path,
    initialization_options: dict[str, Any],
    editor_settings: dict[str, Any],
    capabilities: types.ClientCapabilities,
    editor: Editor,
) -> AsyncIterator[None]:
    await open_session(
        lsp_client, editor, [workspace], initialization_options, capabilities, editor_settings
    )
    yield
    await lsp_client.shutdown_session()
