"""The `create_agent` tool: the model writes a new agent from a sentence, which then runs."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from agentls.core import telemetry
from agentls.core.create import CREATOR, CreateAgentError
from agentls.core.create import create_agent as create_definition
from agentls.core.events import RunEvent, new_id
from agentls.core.target import Target
from agentls.mcp_server.arguments import ArgumentError, BudgetArg, target_of
from agentls.mcp_server.registration import tool_of
from agentls.mcp_server.results import DelegateOutcome, summary_of, tool_result
from agentls.mcp_server.toolbox import LinesArg, Toolbox


class CreatedAgentOut(BaseModel):
    definition: dict[str, Any]
    saved_to: str | None
    run: DelegateOutcome | None


PromptArg = Annotated[
    str, Field(description="what the agent should be, e.g. 'a reviewer for SQL injection'")
]
NewFileArg = Annotated[
    str | None,
    Field(description="a file, relative to the workspace root, to run the new agent on at once"),
]
SaveArg = Annotated[
    bool,
    Field(description="save it to .agentls/agents/NAME.yaml in the workspace; default: false"),
]


def create_agent_tool(box: Toolbox) -> Tool:
    async def create_agent(
        prompt: PromptArg,
        ctx: Context,
        file: NewFileArg = None,
        lines: LinesArg = None,
        save: SaveArg = False,
        budget: BudgetArg = None,
    ) -> Annotated[CallToolResult, CreatedAgentOut]:
        """Have the model write a new agent from a sentence, then run it on the prompt.

        The definition is validated (read-only tools unless the settings allow more); with
        `save` it is written to the workspace and stays available.
        """
        telemetry.continue_trace(ctx.request_context.meta)  # a client's W3C traceparent
        if not prompt.strip():
            raise ArgumentError("prompt", "empty; describe the agent you want")
        if lines is not None and file is None:
            raise ArgumentError("lines", "needs a file to narrow")
        target = await target_of(box.workspace, file, lines) if file is not None else None
        run_ids = [new_id(), new_id()]  # the creation, then the new agent's run
        work = _create_and_run(box, ctx, run_ids, prompt, target, save, budget)
        return await box.cancels.guarded(ctx, "create_agent", run_ids, work)

    return tool_of(create_agent, title="Create an agent", read_only=False, open_world=True)


async def _create_and_run(
    box: Toolbox,
    ctx: Context,
    run_ids: list[str],
    prompt: str,
    target: Target | None,
    save: bool,
    budget: int | None,
) -> CallToolResult:
    creation_id, run_id = run_ids
    runtime = box.runtime
    async with box.progress(ctx) as listener:

        def creation_events(event: RunEvent) -> None:
            if event.run_id == creation_id:
                listener(event)

        unsubscribe = runtime.subscribe(creation_events)
        try:
            created = await create_definition(
                runtime,
                prompt,
                selection=target,
                budget=await box.budget_for(budget, CREATOR),
                save=save,
                allow_edit_tools=box.allow_edit_tools,
                run_id=creation_id,
                **box.run_options(),
            )
        except CreateAgentError as exc:
            raise ToolError(f"prompt: {exc}") from None
        except FileExistsError as exc:
            raise ArgumentError(
                "save", f"{exc.filename} already exists; remove it or ask for another name"
            ) from None
        finally:
            unsubscribe()
        result = await runtime.delegate(
            created.definition,
            prompt,
            target,
            budget=await box.budget_for(budget, created.definition),
            run_id=run_id,
            listener=listener,
            **box.run_options(),
        )
    run = await asyncio.to_thread(box.outcome, result)
    out = CreatedAgentOut(
        definition=created.definition.model_dump(mode="json", exclude_defaults=True),
        saved_to=str(created.saved_to) if created.saved_to else None,
        run=run,
    )
    name = created.definition.name
    where = f", saved to {created.saved_to}" if created.saved_to else " (in memory)"
    text = f"created agent {name!r}{where}\n\n{summary_of(run)}"
    return tool_result(out, text, failed=run.status != "finished")
