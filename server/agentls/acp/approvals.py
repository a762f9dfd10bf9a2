"""Asks in the panel before an agent runs a command (run_command, off unless `--run-commands`).

The question is a `session/request_permission` on the run_command tool call: it shows the exact
command line, the folder and the run's goal. Allow once, always allow this command line (until
agentls stops), or deny; a cancelled question denies.
"""

from __future__ import annotations

from typing import Any

from acp.schema import PermissionOption, ToolCallLocation, ToolCallUpdate

from acp import helpers
from agentls.acp.updates import RunRenderer
from agentls.core.tools.command import COMMAND_TOOL, CommandRequest, Decision

RUN_ONCE = "run-once"
ALWAYS = "always"
DENY = "deny"

OPTIONS = [
    PermissionOption(option_id=RUN_ONCE, name="Run once", kind="allow_once"),
    PermissionOption(option_id=ALWAYS, name="Always run this command", kind="allow_always"),
    PermissionOption(option_id=DENY, name="Deny", kind="reject_once"),
]


async def ask_command(
    conn: Any, session_id: str, renderer: RunRenderer, request: CommandRequest
) -> Decision:
    await renderer.flush()  # the run_command card is on screen before the question
    call_id = renderer.open_call(request.run_id, COMMAND_TOOL) or f"{request.run_id}:command"
    goal = " ".join(request.goal.split())[:200]
    how = "through the shell" if request.shell else "without a shell"
    text = f"`{request.command}`\n\nin {request.cwd} ({how}), for the goal: {goal}"
    try:
        response = await conn.request_permission(
            session_id=session_id,
            tool_call=ToolCallUpdate(
                tool_call_id=call_id,
                title=f"{request.agent} wants to run: {request.command}",
                kind="execute",
                status="pending",
                content=[helpers.tool_content(helpers.text_block(text))],
                locations=[ToolCallLocation(path=str(request.cwd))],
            ),
            options=OPTIONS,
        )
    except Exception as exc:  # a panel that cannot ask: nothing runs
        return Decision.unasked(f"the editor could not ask the user ({exc})")
    outcome = response.outcome
    if getattr(outcome, "outcome", None) != "selected":
        return Decision.deny("the question was cancelled")
    if outcome.option_id == RUN_ONCE:
        return Decision.run_once()
    if outcome.option_id == ALWAYS:
        return Decision.always()
    return Decision.deny()
