"""Reading the model's final answer: the replacement code of an edit, a one-line summary."""

from __future__ import annotations

import re

from agentls.core.lines import with_line_endings_of
from agentls.core.llm import ChatResponse
from agentls.core.run_state import RunFailed, RunState
from agentls.core.target import ProposedEdit

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"^```[^\n`]*\n", re.MULTILINE)


def edit_from_answer(run: RunState, response: ChatResponse, path: str) -> ProposedEdit:
    """An edit-mode run's answer as the edit of its target (`path`: workspace-relative)."""
    assert run.target is not None
    if response.finish_reason == "length" and not _FENCE.search(response.text):
        raise RunFailed(
            "the answer was cut off at the output token limit before its code was "
            "complete; select a smaller range or raise the output token limit"
        )
    new_text = with_line_endings_of(
        replacement(response.text, run.target.selected()), run.target.content()
    )
    if not new_text.strip():
        raise RunFailed("the model returned no code to replace the target with")
    return ProposedEdit(
        path=path,
        range=run.target.effective_range(),
        new_text=new_text,
        agent=run.definition.name,
        description=run.goal,
    )


def replacement(answer: str, original: str) -> str:
    """The code inside the answer's first fenced block (or the whole answer), ending like the original."""
    match = _FENCE.search(answer)
    opened = _OPEN_FENCE.search(answer)
    if match:
        code = match.group(1)
    elif opened:  # a block that never closes: the code is everything after its opening line
        code = answer[opened.end() :]
    else:
        code = answer.strip("\n")
    ends = ("\n", "\r")  # LSP's line endings (a CRLF ends in "\n")
    if original.endswith(ends) and not code.endswith(ends):
        code += "\n"
    if not original.endswith(ends) and code.endswith(ends):
        code = code.rstrip("\r\n")
    return code


def summary(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
