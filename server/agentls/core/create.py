"""create_agent: the model writes an agent definition from a sentence; it is validated (one repair
round with the validation errors), registered in memory, optionally saved, and can run at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from agentls.core.definitions import (
    COMMAND_TOOLS,
    READ_ONLY_TOOLS,
    AgentDefinition,
    LoadedAgent,
    Mode,
)
from agentls.core.runtime import AgentRuntime, RunResult, StructuredOutput
from agentls.core.target import Target

CREATOR = AgentDefinition(
    name="agent-creator",
    description="Writes agent definitions from a one-sentence request",
    instructions=(
        "You design AI agents for a code editor. From the user's request, write one agent "
        "definition as a JSON object with these fields:\n"
        '- "name": short, lowercase letters, digits and hyphens (e.g. "sql-reviewer")\n'
        '- "description": one sentence saying what the agent does\n'
        '- "instructions": the agent\'s system prompt, specific to the request\n'
        '- "mode": "answer" (replies with text), "edit" (rewrites the selected code) or '
        '"tools" (reads and searches the workspace first)\n'
        '- "tools": for mode "tools", a list from read_file, list_files, search; else []\n'
        '- "max_turns": 1 for answer or edit, up to 8 for tools\n'
        "Answer with the JSON object only."
    ),
    mode=Mode.ANSWER,
    max_turns=1,
    budget=20_000,
)


@dataclass
class CreatedAgent:
    definition: AgentDefinition
    creation: RunResult
    saved_to: Path | None = None


class CreateAgentError(Exception):
    """The model could not produce a valid definition; `creation` holds the run that tried."""

    def __init__(self, message: str, creation: RunResult) -> None:
        super().__init__(message)
        self.creation = creation


def _parse(text: str) -> dict[str, object]:
    """The JSON object in an answer, tolerating a fenced block around it."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise ValueError("the answer contains no JSON object")
    value = json.loads(body[start : end + 1])
    if not isinstance(value, dict):
        raise ValueError("the answer is not a JSON object")
    return value


def validation_problems(text: str) -> list[str]:
    """What is wrong with a generated definition, one message per field; empty when valid."""
    try:
        data = _parse(text)
    except (ValueError, json.JSONDecodeError) as exc:
        return [f"not valid JSON: {exc}"]
    try:
        AgentDefinition.model_validate(data)
    except ValidationError as exc:
        return [
            f"field {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        ]
    return []


def restrict(
    definition: AgentDefinition, *, allow_edit_tools: bool, taken: set[str]
) -> AgentDefinition:
    """Read-only tools unless allowed; a name that would shadow an existing agent gets a suffix.

    MCP tools cannot be told apart as read-only, so a generated agent keeps none unless allowed.
    """
    tools = (
        [t for t in definition.tools if t not in COMMAND_TOOLS]
        if allow_edit_tools
        else [t for t in definition.tools if t in READ_ONLY_TOOLS]
    )
    mcp = definition.mcp if allow_edit_tools else {}
    name = definition.name
    n = 2
    while name in taken:
        suffix = f"-{n}"
        # Stay within the name's 64 characters (model_copy does not validate).
        name = definition.name[: 64 - len(suffix)].rstrip("-") + suffix
        n += 1
    mode = definition.mode
    if mode is Mode.TOOLS and not tools:
        mode = Mode.ANSWER
    return definition.model_copy(update={"tools": tools, "mcp": mcp, "name": name, "mode": mode})


def save_definition(workspace: Path, definition: AgentDefinition) -> Path:
    """Write the definition to the workspace's .agentls/agents/, never over an existing file."""
    folder = workspace / ".agentls" / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{definition.name}.yaml"
    data = definition.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("mode", definition.mode.value)
    with path.open("x", encoding="utf-8") as out:
        yaml.safe_dump(data, out, sort_keys=False, allow_unicode=True, width=100)
    return path


async def create_agent(
    runtime: AgentRuntime,
    prompt: str,
    *,
    selection: Target | None = None,
    budget: int | None = None,
    save: bool = False,
    allow_edit_tools: bool = False,
    parent_run_id: str | None = None,
    run_id: str | None = None,
    depth: int = 0,
    ancestor_run_ids: tuple[str, ...] = (),
) -> CreatedAgent:
    """Have the model write a definition for `prompt`; register it (and save it when asked)."""
    goal = f"Write an agent definition for this request: {prompt}"
    creation = await runtime.delegate(
        CREATOR,
        goal,
        selection,
        budget=budget,
        parent_run_id=parent_run_id,
        run_id=run_id,
        depth=depth,
        ancestor_run_ids=ancestor_run_ids,
        structured=StructuredOutput(
            schema=AgentDefinition.json_schema_for_generation(), check=validation_problems
        ),
    )
    if creation.status.value != "finished":
        raise CreateAgentError(
            f"creating the agent {creation.status.value}: {creation.error or 'no definition'}",
            creation,
        )
    definition = restrict(
        AgentDefinition.model_validate(_parse(creation.text)),
        allow_edit_tools=allow_edit_tools,
        taken=set(runtime.registry.names()),
    )
    saved_to = save_definition(runtime.workspace, definition) if save else None
    runtime.registry.add(
        LoadedAgent(definition, "workspace" if saved_to else "generated", saved_to)
    )
    return CreatedAgent(definition, creation, saved_to)
