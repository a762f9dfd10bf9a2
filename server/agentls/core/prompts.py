"""What the model is told: the first messages of a run per mode, its output limit, repair turns."""

from __future__ import annotations

from typing import Any

from agentls.core.definitions import Mode
from agentls.core.llm import ChatResponse
from agentls.core.run_state import RunFailed, RunState

MAX_TARGET_CHARS = 60_000

_EDIT_RULE = (
    "\n\nAnswer with the complete new version of the target code in one fenced code "
    "block and nothing else. Keep everything you were not asked to change."
)
_TOOLS_RULE = "\n\nUse the tools when you need to; reply without a tool call when you are done."


def first_messages(run: RunState, where: str) -> list[dict[str, Any]]:
    """The system prompt (instructions plus the mode's rule) and the goal with its target code.

    `where` is how the target's file is named to the model (workspace-relative).
    """
    d = run.definition
    system = d.instructions.strip()
    if d.mode is Mode.EDIT:
        system += _EDIT_RULE
    elif d.mode is Mode.TOOLS:
        system += _TOOLS_RULE
    parts = [f"Goal: {run.goal}"]
    if run.target is not None:
        code = run.target.selected()
        if len(code) > MAX_TARGET_CHARS:
            what = "the selection" if run.target.range is not None else f"the file {where}"
            raise RunFailed(
                f"{what} is {len(code):,} characters, more than the {MAX_TARGET_CHARS:,} an agent "
                "takes at once; select a smaller range"
            )
        if run.target.range is not None:
            r = run.target.range
            where += f" (lines {r.start.line + 1}-{r.end.line + (1 if r.end.character else 0)})"
        lang = run.target.path.suffix.lstrip(".")
        parts.append(f"Target: {where}\n```{lang}\n{code}\n```")
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def output_limit(run: RunState, max_output_tokens: int, max_edit_output_tokens: int) -> int:
    """max_tokens of a call: an edit's answer must hold the whole replaced code."""
    if run.definition.mode is Mode.EDIT and run.target is not None:
        wanted = len(run.target.selected().encode()) // 2 + 256
        return min(max_edit_output_tokens, max(max_output_tokens, wanted))
    return max_output_tokens


def assistant_message(response: ChatResponse) -> dict[str, Any]:
    """The model's tool-calling turn as it goes back into the conversation."""
    return {
        "role": "assistant",
        "content": response.text or None,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.raw_arguments},
            }
            for c in response.tool_calls
        ],
    }


def repair_prompt(problems: list[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems)
    return (
        f"Your answer failed validation:\n{listed}\nAnswer again with the complete, corrected JSON."
    )
