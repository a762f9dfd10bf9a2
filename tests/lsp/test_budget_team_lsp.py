"""`agentls.budget` on a team database, from the editor of a member: changing a limit is an
admin's right, and the editor hears the database's refusal in its own words (which role may,
who asked), not an internal error; reading the team's budget is a member's right."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient
from tests.lsp.harness import HOME, SERVER_COMMAND, SERVER_ENV, Editor, execute, open_session
from tests.rig.postgres import PostgresCluster, database_name

from agentls.core.budget import TokenBudgeter
from agentls.core.stores.postgres import ADMIN_ROLE, MEMBER_ROLE


@pytest.fixture
def member_url(postgres_cluster: PostgresCluster, team_db: str) -> Any:
    """A member's URL without its password; the password in the server's ~/.pgpass."""
    postgres_cluster.login_role("lsp_member", "lsp-member-pw", MEMBER_ROLE)
    db = database_name(team_db)
    pgpass = HOME / ".pgpass"
    line = f"127.0.0.1:{postgres_cluster.port}:{db}:lsp_member:lsp-member-pw\n"
    before = pgpass.read_text() if pgpass.exists() else None
    pgpass.write_text((before or "") + line)
    os.chmod(pgpass, 0o600)
    with _admin(team_db) as admin:
        admin.set_limit(5000)
    yield f"postgresql://lsp_member@127.0.0.1:{postgres_cluster.port}/{db}"
    if before is None:
        pgpass.unlink()
    else:
        pgpass.write_text(before)


def _admin(url: str) -> TokenBudgeter:
    from agentls.core.stores.pg_ledger import PgLedgerStore

    return TokenBudgeter(store=PgLedgerStore(url))


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER_COMMAND, server_env=SERVER_ENV))
async def client(
    lsp_client: LanguageClient,
    workspace: Path,
    member_url: str,
    capabilities: types.ClientCapabilities,
    editor: Editor,
) -> AsyncIterator[None]:
    settings = {"databaseUrl": member_url, "apiKey": "sk-test", "trustWorkspace": True}
    await open_session(lsp_client, editor, [workspace], {"settings": settings}, capabilities, {})
    yield
    await lsp_client.shutdown_session()


async def test_a_member_reads_the_team_budget_but_its_limit_change_is_refused_in_words(
    client: LanguageClient,
) -> None:
    got = await execute(client, "agentls.budget", {"action": "get"})
    assert got["limit"] == 5000  # the team's, set by an admin

    with pytest.raises(JsonRpcException) as refused:
        await execute(client, "agentls.budget", {"action": "set", "limit": 9000})
    message = str(refused.value)
    # The request failed (a refusal, said as such), not the server (an internal error).
    assert refused.value.code == types.LSPErrorCodes.RequestFailed.value, message
    assert message.startswith("agentls.budget: the team database "), message
    assert "refused to let user 'lsp_member' change a limit" in message, message
    assert f"only members of {ADMIN_ROLE} may" in message, message
    assert "lsp-member-pw" not in message
    got = await execute(client, "agentls.budget", {"action": "get"})
    assert got["limit"] == 5000  # unchanged, and the server still answers
