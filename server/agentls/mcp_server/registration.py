"""How an agentls tool is offered to MCP hosts: description, annotations, schema, argument errors.

Built on the SDK's `Tool` (its public constructor `Tool.from_function` and its `run`), with what
hosts rely on and the SDK leaves as written: a description without the docstring's indentation,
hints about side effects (`readOnlyHint` lets a host skip an approval prompt), an input schema in
the portable subset (`schema.py`), and arguments the schema refuses reported in one sentence
that names the argument and its bound, like the tools' own checks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import ValidationError

from agentls.mcp_server.arguments import schema_error
from agentls.mcp_server.schema import portable_schema


class CheckedTool(Tool):
    """A tool whose arguments are checked against its schema first, with readable errors."""

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        unknown = sorted(set(arguments) - set(self.parameters.get("properties", {})))
        if unknown:
            names = ", ".join(self.parameters.get("properties", {}))
            raise ToolError(
                f"Error executing tool {self.name}: {unknown[0]}: no such argument; "
                f"the arguments are {names or 'none'}"
            )
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            raise ToolError(
                f"Error executing tool {self.name}: {schema_error(exc, self.parameters)}"
            ) from exc
        return await super().run(arguments, context, convert_result)


def tool_of(
    fn: Callable[..., Any],
    *,
    title: str,
    read_only: bool,
    open_world: bool,
) -> Tool:
    """`fn` as a tool named after it, described by its docstring.

    `read_only`: it changes nothing (no tokens spent, nothing written). `open_world`: it reaches
    outside this machine (a model provider).
    """
    tool = CheckedTool.from_function(
        fn,
        title=title,
        description=inspect.cleandoc(fn.__doc__ or ""),
        annotations=ToolAnnotations(
            title=title,
            read_only_hint=read_only,
            # Runs spend tokens and write the audit trail, but destroy nothing: edits come back
            # as diffs, and a saved agent never overwrites a file.
            destructive_hint=False,
            idempotent_hint=read_only,
            open_world_hint=open_world,
        ),
    )
    tool.parameters = portable_schema(tool.parameters)
    return tool
