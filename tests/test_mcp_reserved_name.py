"""`agentls` in a definition's `mcp:` is the per-run child agentls, never a configured server."""

from __future__ import annotations

import json
from pathlib import Path

from agentls.core.definitions import AgentDefinition, Mode
from agentls.core.mcp_client.pool import McpPool
from agentls.core.mcp_client.tools import McpToolProvider


async def test_a_project_mcp_json_entry_named_agentls_never_stands_in_for_the_child(
    tmp_path: Path,
) -> None:
    # Claude Code users often have agentls itself in .mcp.json; starting it from the pool would
    # give the orchestrator a second agentls without depth or budget lineage.
    (tmp_path / ".mcp.json").write_text(
        json.dumps({"mcpServers": {"agentls": {"command": str(tmp_path / "no-such-binary")}}})
    )
    orchestrator = AgentDefinition(
        name="orchestrator",
        description="splits work",
        instructions="delegate",
        mode=Mode.TOOLS,
        mcp={"agentls": ["delegate"]},
    )
    pool = McpPool(tmp_path)
    provider = McpToolProvider(pool)
    try:
        assert await provider(orchestrator) == {}
    finally:
        await provider.aclose()
