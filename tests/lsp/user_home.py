"""A language server with a home folder of its own, so a test can write the user's settings file
(`~/.config/agentls/settings.json`) that the server reads as the user's own configuration.

A module that needs it sets `client = client_with_home(HOME)` and `user_settings =
user_settings_fixture(HOME)` (HOME from `new_home()`), and imports `initial_user_settings`: the
file's content when the server starts (None: no file), which a test class may override. Tests
write the file later with `user_settings(...)`; it is removed after each test.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from tests.lsp.harness import SERVER_COMMAND, SERVER_ENV, Editor, open_session


def new_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="agentls-lsp-user-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def settings_file(home: Path) -> Path:
    return home / ".config" / "agentls" / "settings.json"


def client_with_home(home: Path) -> Any:
    """The conftest's `client` fixture, with the server's HOME at `home`."""

    @pytest_lsp.fixture(
        config=ClientServerConfig(
            server_command=SERVER_COMMAND, server_env=SERVER_ENV | {"HOME": str(home)}
        )
    )
    async def client(
        lsp_client: LanguageClient,
        workspace: Path,
        initialization_options: dict[str, Any],
        editor_settings: dict[str, Any],
        capabilities: types.ClientCapabilities,
        editor: Editor,
        user_settings: Callable[[dict[str, Any]], None],
        initial_user_settings: dict[str, Any] | None,
    ) -> AsyncIterator[None]:
        if initial_user_settings is not None:
            user_settings(initial_user_settings)
        await open_session(
            lsp_client, editor, [workspace], initialization_options, capabilities, editor_settings
        )
        yield
        await lsp_client.shutdown_session()

    return client


def user_settings_fixture(home: Path) -> Any:
    """A fixture giving `write(settings)`, which writes the user's settings file under `home`."""

    @pytest.fixture
    def user_settings() -> Iterator[Callable[[dict[str, Any]], None]]:
        path = settings_file(home)
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(settings: dict[str, Any]) -> None:
            path.write_text(json.dumps(settings), encoding="utf-8")

        yield write
        path.unlink(missing_ok=True)

    return user_settings


@pytest.fixture
def initial_user_settings() -> dict[str, Any] | None:
    return None
