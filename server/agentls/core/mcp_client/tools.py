"""MCP tools as agent tools: the allow-list of a definition, OpenAI-safe names, bounded results.

A definition's `mcp: {server: [tool, ...]}` (or `{server: "*"}`) offers exactly those tools,
each named `mcp__<server>__<tool>`. OpenAI function names allow only `[a-zA-Z0-9_-]` and 64
characters, so other characters become `_` and a long name is cut and given a short hash; names
stay unique within an agent's tools.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentls.core.definitions import AgentDefinition
from agentls.core.llm import ToolSpec
from agentls.core.mcp_client.config import (
    CHILD_SERVER,
    McpConfig,
    McpServerSettings,
    load_mcp_config,
)
from agentls.core.tools.base import ProgressReport, Tool, ToolResult

if TYPE_CHECKING:
    from agentls.core.mcp_client.pool import McpPool, ServerTool

log = logging.getLogger("agentls.mcp")

PREFIX = "mcp__"
MAX_NAME = 64
MAX_DESCRIPTION = 1_000
MAX_SCHEMA_CHARS = 20_000
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    """`mcp__<server>__<tool>`, made a valid OpenAI function name."""
    name = _UNSAFE.sub("_", f"{PREFIX}{server}__{tool}")
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def unique_names(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Function name -> (server, tool) for each pair; a clash after sanitizing gets `_2`, `_3`..."""
    names: dict[str, tuple[str, str]] = {}
    for server, tool in pairs:
        name = tool_name(server, tool)
        n = 2
        while name in names:
            suffix = f"_{n}"
            name = tool_name(server, tool)[: MAX_NAME - len(suffix)] + suffix
            n += 1
        names[name] = (server, tool)
    return names


def parameters_of(schema: Any) -> dict[str, Any]:
    """The tool's input schema as function parameters; a hostile or huge one is replaced."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return {"type": "object", "properties": {}}
    if len(json.dumps(schema, default=str)) > MAX_SCHEMA_CHARS:
        return {"type": "object", "properties": {}, "additionalProperties": True}
    return schema


@dataclass
class McpTool:
    """One allowed tool of one server, called through the shared pool."""

    pool: McpPool
    server: str
    tool: ServerTool
    name: str

    read_only = False  # MCP annotations are hints from the server, not a guarantee

    @property
    def spec(self) -> ToolSpec:
        description = (self.tool.description or f"{self.tool.name} (MCP server {self.server})")[
            :MAX_DESCRIPTION
        ]
        return ToolSpec(
            name=self.name,
            description=f"[MCP {self.server}] {description}",
            parameters=parameters_of(self.tool.input_schema),
        )

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        return await self.pool.call_tool(self.server, self.tool.name, arguments)

    async def call_with_progress(
        self, arguments: dict[str, Any], report: ProgressReport
    ) -> ToolResult:
        return await self.pool.call_tool(self.server, self.tool.name, arguments, report=report)


class McpToolProvider:
    """`AgentRuntime(extra_tools=...)`: the MCP tools a definition allows, from a shared pool.

    The configuration is read again at each run that uses MCP, so edits to the config files
    apply to the next run; sessions of servers whose entry changed are restarted.
    """

    def __init__(
        self,
        pool: McpPool,
        editor_servers: Mapping[str, McpServerSettings] | None = None,
        *,
        trusted: bool = True,
    ) -> None:
        self.pool = pool
        self.editor_servers = dict(editor_servers or {})
        self.trusted = trusted
        self._reported: set[str] = set()

    async def reload(self) -> McpConfig:
        config = await asyncio.to_thread(
            load_mcp_config, self.pool.workspace, self.editor_servers, trusted=self.trusted
        )
        await self.pool.close_sessions(self.pool.reconfigure(config))
        for error in config.errors:
            if error not in self._reported:  # once per problem, not once per run
                self._reported.add(error)
                log.warning("MCP configuration: %s", error)
        return config

    async def __call__(self, definition: AgentDefinition) -> dict[str, Tool]:
        # `agentls` names the per-run child agentls (core/tools/delegation.py), never a pool
        # server: a project's .mcp.json entry for agentls must not stand in for it.
        wanted = {s: a for s, a in definition.mcp.items() if s != CHILD_SERVER}
        if not wanted:
            return {}
        from agentls.core.mcp_client.pool import McpServerError

        await self.reload()
        listed = await asyncio.gather(*(self.pool.tools(server) for server in wanted))
        chosen: list[tuple[str, ServerTool]] = []
        for (server, allowed), available in zip(wanted.items(), listed, strict=True):
            if allowed == "*":
                chosen.extend((server, t) for t in available.values())
                continue
            missing = [name for name in allowed if name not in available]
            if missing:
                raise McpServerError(
                    f"agent {definition.name!r} allows {', '.join(map(repr, missing))} of MCP "
                    f"server {server!r}, which has no such tool (it has: "
                    f"{', '.join(sorted(available)) or 'none'})"
                )
            chosen.extend((server, available[name]) for name in allowed)
        by_key = {(server, t.name): t for server, t in chosen}
        names = unique_names((server, t.name) for server, t in chosen)
        return {
            name: McpTool(self.pool, server, by_key[(server, tool)], name)
            for name, (server, tool) in names.items()
        }

    async def aclose(self) -> None:
        await self.pool.aclose()
