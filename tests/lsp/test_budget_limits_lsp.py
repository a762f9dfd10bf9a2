"""`agentls.budget` sets what `agentls budget set` sets: a limit in tokens ('2M') or dollars ('$50'),
for the total, an agent or a user, for all time or per day, week or month; the editor sees it in
the command's answer and in the next `agentls/budget` notification. Bad values are InvalidParams
naming the argument.

The server runs as user alice (`AGENTLS_USER`), so her limits apply to the calls it makes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import ClientServerConfig, LanguageClient
from tests.lsp.harness import SERVER_COMMAND, SERVER_ENV, Editor, execute, open_session, uri_of
from tests.rig.scripted_openai import ScriptedOpenAI, Text

# gpt-4o-mini at OpenAI's published prices (see tests/lsp/test_costs.py): a call of 100 prompt
# tokens (40 cached) and 20 output tokens costs this many dollars.
CALL_COST = (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 1_000_000


@pytest.fixture
def model() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(models=("gpt-4o-mini",)) as server:
        yield server


@pytest.fixture
def settings(model: ScriptedOpenAI) -> dict[str, Any]:
    return {
        "baseUrl": model.url,
        "model": "gpt-4o-mini",
        "apiKey": "sk-test",
        "trustWorkspace": True,
    }


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=SERVER_COMMAND, server_env=SERVER_ENV | {"AGENTLS_USER": "alice"}
    )
)
async def client(
    lsp_client: LanguageClient,
    workspace: Path,
    settings: dict[str, Any],
    capabilities: types.ClientCapabilities,
    editor: Editor,
) -> AsyncIterator[None]:
    await open_session(lsp_client, editor, [workspace], {"settings": settings}, capabilities, {})
    yield
    await lsp_client.shutdown_session()


def limit_of(snapshot: dict[str, Any], applies_to: str, unit: str) -> dict[str, Any] | None:
    found = [
        lim for lim in snapshot["limits"] if lim["appliesTo"] == applies_to and lim["unit"] == unit
    ]
    return found[0] if found else None


async def test_a_users_monthly_dollar_limit_is_set_shown_and_counts_her_calls(
    client: LanguageClient, workspace: Path, model: ScriptedOpenAI, editor: Editor
) -> None:
    snapshot = await execute(
        client, "agentls.budget", {"action": "set", "limit": "$50", "per": "month", "user": "alice"}
    )

    assert snapshot["user"] == "alice", "the editor learns whose limits bind this server's calls"
    alice = limit_of(snapshot, "user", "usd")
    assert alice is not None
    assert (alice["name"], alice["period"], alice["limit"], alice["used"]) == (
        "alice",
        "month",
        50.0,
        0.0,
    )
    assert len(alice["window"]) == len("2026-12"), "the current UTC month"
    assert snapshot["limit"] is None, "a user's dollar limit leaves the total's token limit alone"
    sent = await editor.wait_until(
        lambda: next((b for b in reversed(editor.budgets) if limit_of(b, "user", "usd")), None)
    )
    assert limit_of(sent, "user", "usd") == alice
    assert sent["user"] == "alice"

    model.enqueue(
        Text("It computes totals.", prompt_tokens=100, cached_tokens=40, completion_tokens=20)
    )
    run = await execute(
        client, "agentls.delegate", {"agent": "explain", "uri": uri_of(workspace / "src/app.py")}
    )
    assert run["status"] == "finished"

    spent = await editor.wait_until(
        lambda: (lim := limit_of(editor.budgets[-1], "user", "usd")) and lim["used"] > 0 and lim
    )
    assert spent["used"] == pytest.approx(CALL_COST)
    assert spent["remaining"] == pytest.approx(50.0 - CALL_COST)


async def test_token_limits_as_people_write_them(client: LanguageClient) -> None:
    snapshot = await execute(client, "agentls.budget", {"action": "set", "limit": "20k"})
    assert snapshot["limit"] == 20_000

    snapshot = await execute(
        client, "agentls.budget", {"action": "set", "limit": "2M", "per": "week"}
    )
    weekly = limit_of(snapshot, "total", "tokens")
    assert weekly is not None
    assert (weekly["period"], weekly["limit"]) == ("week", 2_000_000)
    assert "-W" in weekly["window"]

    snapshot = await execute(
        client, "agentls.budget", {"action": "set", "limit": "none", "per": "week"}
    )
    assert limit_of(snapshot, "total", "tokens") is None, "'none' lifts the weekly limit"
    assert snapshot["limit"] == 20_000, "and leaves the one for all time"


async def test_an_agents_dollar_limit(client: LanguageClient) -> None:
    snapshot = await execute(
        client, "agentls.budget", {"action": "set", "limit": "$1.50", "agent": "review"}
    )
    review = limit_of(snapshot, "agent", "usd")
    assert review is not None
    assert (review["name"], review["period"], review["limit"]) == ("review", None, 1.5)


BAD = [
    pytest.param({"action": "set", "limit": "$x"}, "argument 'limit'", "'$x'", id="dollars"),
    pytest.param({"action": "set", "limit": "lots"}, "argument 'limit'", "'lots'", id="words"),
    pytest.param({"action": "set", "limit": "-5k"}, "argument 'limit'", "negative", id="negative"),
    pytest.param({"action": "set", "limit": True}, "argument 'limit'", "got bool", id="boolean"),
    pytest.param(
        {"action": "set", "limit": "$5", "per": "year"}, "argument 'per'", "'month'", id="per-year"
    ),
    pytest.param(
        {"action": "set", "limit": "$5", "user": " "}, "argument 'user'", "empty", id="empty-user"
    ),
    pytest.param(
        {"action": "set", "limit": 5, "user": "alice", "agent": "review"},
        "argument 'user'",
        "different limits",
        id="user-and-agent",
    ),
    pytest.param({"action": "reset", "user": "alice"}, "argument 'user'", "set", id="reset-a-user"),
    pytest.param({"action": "get", "per": "day"}, "argument 'per'", "set", id="get-per-day"),
]


@pytest.mark.parametrize(("arguments", "named", "detail"), BAD)
async def test_a_bad_limit_is_named_and_changes_nothing(
    client: LanguageClient, arguments: dict[str, Any], named: str, detail: str
) -> None:
    before = await execute(client, "agentls.budget", {"action": "set", "limit": 7_000})

    with pytest.raises(JsonRpcInvalidParams) as raised:
        await execute(client, "agentls.budget", arguments)

    message = str(raised.value)
    assert message.count("agentls.budget: ") == 1 and named in message, message
    assert detail in message, message
    assert await execute(client, "agentls.budget") == before
