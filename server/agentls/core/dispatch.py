"""Tool dispatch: one model-chosen tool call, bounded in time, audited, answered as framed data."""

from __future__ import annotations

import time
from typing import Any

from agentls.core.events import EventKind
from agentls.core.llm import ToolCallRequest
from agentls.core.redact import redact, redact_text
from agentls.core.run_state import EventListener, RunFailed, RunState
from agentls.core.tool_progress import ProgressForwarder
from agentls.core.tools.base import Tool, ToolResult, call_with_limit, summarize_arguments
from agentls.core.tools.framing import frame_tool_output


async def dispatch_tool_call(
    run: RunState, tools: dict[str, Tool], call: ToolCallRequest, emit: EventListener
) -> dict[str, Any]:
    """Run `call` (or explain to the model why it cannot run); returns the tool message.

    A second invalid call (unknown tool, arguments that are not a JSON object) ends the run.
    """
    arguments = call.arguments
    # Redacted before it is cut short: a secret cut in half no longer looks like one.
    summary = (
        summarize_arguments(redact(arguments))
        if arguments
        else redact_text(call.raw_arguments)[:160]
    )
    emit(
        run.event(
            EventKind.TOOL_STARTED,
            data={"turn": run.turn, "tool": call.name, "call_id": call.id, "arguments": summary},
        )
    )
    started = time.monotonic()
    if call.name not in tools:
        result = ToolResult.error(
            f"unknown tool {call.name!r}; available tools: {', '.join(sorted(tools))}"
        )
    elif arguments is None:
        result = ToolResult.error(
            f"the arguments of {call.name} are not a JSON object: {call.raw_arguments[:200]!r}"
        )
    else:
        progress = ProgressForwarder(run, call.name, emit)
        try:
            result = await call_with_limit(tools[call.name], arguments, report=progress)
        except Exception as exc:  # a tool's bug is the model's error message, not a crash
            result = ToolResult.error(f"{call.name} failed: {exc}")
        finally:
            progress.close()
    bad_call = call.name not in tools or arguments is None
    emit(
        run.event(
            EventKind.TOOL_CALL,
            duration_ms=(time.monotonic() - started) * 1000.0,
            error=result.content if result.is_error else None,
            data={
                "turn": run.turn,
                "tool": call.name,
                "call_id": call.id,
                "arguments": summary,
                "is_error": result.is_error,
                "result_chars": len(result.content),
                **result.data,
            },
            content={"arguments": call.raw_arguments, "result": result.content},
        )
    )
    if bad_call:
        run.bad_tool_calls += 1
        if run.bad_tool_calls > 1:
            raise RunFailed(f"the model made a second invalid tool call: {result.content}")
    for edit in result.edits:
        run.propose(edit, emit)
    return {
        "role": "tool",
        "tool_call_id": call.id,
        "name": call.name,
        # What a tool returns is data (framed); the runtime's own word on a bad call is not.
        "content": result.content
        if bad_call
        else frame_tool_output(call.name, result.content, is_error=result.is_error),
    }
