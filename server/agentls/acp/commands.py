"""What a prompt asks for: a slash command (`/review`, `/parallel`, `/create`, `/budget`) or a plain
goal for the default agent; and the command list the panel offers (`available_commands_update`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agentls.core.registry import AgentRegistry

PARALLEL = "parallel"
CREATE = "create"
BUDGET = "budget"
BUILTIN_COMMANDS = (PARALLEL, CREATE, BUDGET)

# The orchestrator (from the MCP server work) plans and delegates; without it, explain answers.
PREFERRED_DEFAULT = "orchestrator"
FALLBACK_DEFAULT = "explain"


class CommandError(ValueError):
    """A prompt that cannot run as written; the message says what to type instead."""


@dataclass(frozen=True)
class Delegate:
    agent: str
    goal: str  # empty: the agent's own description is the goal


@dataclass(frozen=True)
class Parallel:
    agents: list[str]
    goal: str


@dataclass(frozen=True)
class Create:
    sentence: str


@dataclass(frozen=True)
class Budget:
    words: list[str] = field(default_factory=list)


Command = Delegate | Parallel | Create | Budget


def default_agent(registry: AgentRegistry, setting: str | None) -> str:
    """The agent a plain prompt goes to: the setting, else orchestrator when present, else explain."""
    if setting:
        return setting
    return PREFERRED_DEFAULT if PREFERRED_DEFAULT in registry else FALLBACK_DEFAULT


def parse_command(text: str, registry: AgentRegistry, default: str) -> Command:
    """The command a prompt's text asks for; raises CommandError naming what is wrong."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        if default not in registry:
            raise CommandError(
                f"The default agent {default!r} is not defined here. Start the prompt with one of "
                f"{_agent_list(registry)}, or set --default-agent."
            )
        return Delegate(default, stripped)
    name, _, rest = stripped[1:].partition(" ")
    rest = rest.strip()
    if name == PARALLEL:
        return _parallel(rest, registry)
    if name == CREATE:
        if not rest:
            raise CommandError(
                "/create needs a sentence that describes the agent, e.g. "
                "`/create an agent that lists the TODOs in this file`."
            )
        return Create(rest)
    if name == BUDGET:
        return Budget(rest.split())
    if name in registry:
        return Delegate(name, rest)
    raise CommandError(
        f"Unknown command /{name}. The commands are {_agent_list(registry)} and "
        f"/{PARALLEL}, /{CREATE}, /{BUDGET}; a prompt without a slash goes to {default!r}."
    )


def _parallel(rest: str, registry: AgentRegistry) -> Parallel:
    usage = "write `/parallel review,explain what to look at`"
    names_part, _, goal = rest.partition(" ")
    names = [n.strip() for n in re.split(r",", names_part) if n.strip()]
    if not names:
        raise CommandError(f"/parallel needs agent names separated by commas: {usage}.")
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise CommandError(
            f"/parallel: unknown agent {', '.join(repr(n) for n in unknown)}; the agents are "
            f"{_agent_list(registry)} ({usage})."
        )
    return Parallel(names, goal.strip())


def _agent_list(registry: AgentRegistry) -> str:
    return ", ".join(f"/{name}" for name in sorted(registry.names()))


def available_commands(registry: AgentRegistry) -> list[dict[str, object]]:
    """One command per agent plus the built-ins, in the wire shape of AvailableCommand."""
    commands: list[dict[str, object]] = [
        {
            "name": loaded.definition.name,
            "description": loaded.definition.description,
            "input": {"hint": "what the agent should do (optional)"},
        }
        for loaded in sorted(registry, key=lambda a: a.definition.name)
        if loaded.definition.name not in BUILTIN_COMMANDS
    ]
    commands += [
        {
            "name": PARALLEL,
            "description": "Run several agents on the same goal at once",
            "input": {"hint": "AGENT,AGENT goal"},
        },
        {
            "name": CREATE,
            "description": "Create an agent from a sentence and run it",
            "input": {"hint": "a sentence describing the agent"},
        },
        {
            "name": BUDGET,
            "description": "Show the token budget; `/budget set N` sets the total limit",
            "input": {"hint": "set N | set none (optional)"},
        },
    ]
    return commands


AGENT_OPTION = "agent"


def agent_option(registry: AgentRegistry, current: str) -> dict[str, object]:
    """The session's agent picker (a `select` config option): where a plain prompt goes."""
    return {
        "type": "select",
        "id": AGENT_OPTION,
        "name": "Agent",
        "description": "The agent a prompt without a /command goes to",
        "category": "mode",
        "currentValue": current,
        "options": [
            {
                "value": a.definition.name,
                "name": a.definition.name,
                "description": a.definition.description,
            }
            for a in registry
        ],
    }
