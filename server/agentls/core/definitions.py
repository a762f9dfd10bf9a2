"""Agent definitions: the YAML/Markdown format, its validation, and the registry of loaded agents.

Sources load in order and later wins: built-ins, the user's folder, the workspace's
`.agentls/agents/`, and Claude Code's `.claude/agents/*.md`. One bad file never stops the others:
its errors are kept with file, line, column and field so adapters can show them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from agentls.core.safe_yaml import (
    MAX_BYTES,
    YamlProblem,
    compose_untrusted,
    construct,
    duplicate_keys,
)

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"

# A file with more problems than this is reported by its first ones.
MAX_ERRORS_PER_FILE = 20

READ_ONLY_TOOLS = ("read_file", "list_files", "search")
# run_command is offered only when settings enable it (see core/tools/command.py).
COMMAND_TOOLS = ("run_command",)
BUILTIN_TOOLS = (*READ_ONLY_TOOLS, "propose_edit", *COMMAND_TOOLS)


def _known_tool(tool: str) -> str:
    if tool not in BUILTIN_TOOLS:
        raise ValueError(f"unknown tool {tool!r}; built-in tools are {', '.join(BUILTIN_TOOLS)}")
    return tool


# Checked item by item, so an error points at the offending entry of the list.
BuiltinToolName = Annotated[str, AfterValidator(_known_tool)]


class Mode(StrEnum):
    ANSWER = "answer"
    EDIT = "edit"
    TOOLS = "tools"


class AgentDefinition(BaseModel):
    """One agent: what it is told, how it runs, what it may use and spend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    description: str = Field(min_length=1, max_length=500)
    instructions: str = Field(min_length=1)
    mode: Mode = Mode.ANSWER
    tools: list[BuiltinToolName] = Field(default_factory=list)
    # Allowed MCP tools per server: a list of tool names, or "*" for all of the server's tools.
    mcp: dict[str, list[str] | Literal["*"]] = Field(default_factory=dict)
    model: str | None = None
    budget: int | None = Field(default=None, gt=0)
    max_turns: int = Field(default=8, ge=1, le=100)
    code_action: str | None = None

    @classmethod
    def json_schema_for_generation(cls) -> dict[str, Any]:
        """The schema a model fills in when it writes a definition (create_agent)."""
        return {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": NAME_PATTERN, "minLength": 1},
                "description": {"type": "string", "minLength": 1},
                "instructions": {"type": "string", "minLength": 1},
                "mode": {"type": "string", "enum": [m.value for m in Mode]},
                "tools": {
                    "type": "array",
                    # Generated agents never run commands.
                    "items": {
                        "type": "string",
                        "enum": [t for t in BUILTIN_TOOLS if t not in COMMAND_TOOLS],
                    },
                },
                "max_turns": {"type": "integer", "minimum": 1, "maximum": 20},
                "code_action": {"type": "string"},
            },
            "required": ["name", "description", "instructions", "mode"],
            "additionalProperties": False,
        }


@dataclass(frozen=True)
class DefinitionError:
    """A problem in one definition file, located as precisely as the file allows (1-based)."""

    path: Path
    message: str
    line: int = 1
    column: int = 1
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


@dataclass(frozen=True)
class LoadedAgent:
    definition: AgentDefinition
    source: str  # "builtin", "user", "workspace", "claude", "generated"
    path: Path | None = None
    line: int = 1  # of its `name` field in the file (1-based)

    def summary(self) -> dict[str, Any]:
        """What listings show of an agent (CLI JSON, the editor's agent picker)."""
        d = self.definition
        return {
            "name": d.name,
            "description": d.description,
            "mode": d.mode.value,
            "source": self.source,
            "path": str(self.path) if self.path else None,
            "codeAction": d.code_action,
        }


@dataclass
class LoadResult:
    agents: list[LoadedAgent] = field(default_factory=list)
    errors: list[DefinitionError] = field(default_factory=list)


class UnknownAgentError(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown agent {name!r}; known agents: {names}")


def _key_positions(node: yaml.Node) -> dict[tuple, yaml.Node]:
    """Map each key path in a YAML document to the node of its key (or item), for error positions.

    An aliased node is walked once, at its first use: positions never expand aliases.
    """
    positions: dict[tuple, yaml.Node] = {}
    walked: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(node, ())]
    while stack:
        current, prefix = stack.pop()
        if id(current) in walked:
            continue
        walked.add(id(current))
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                path = (*prefix, key_node.value)
                positions.setdefault(path, key_node)
                stack.append((value_node, path))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                path = (*prefix, index)
                positions.setdefault(path, item)
                stack.append((item, path))
    return positions


def _errors_from_validation(
    exc: ValidationError, path: Path, root: yaml.Node | None, line_offset: int
) -> list[DefinitionError]:
    positions = _key_positions(root) if root is not None else {}
    errors = []
    for err in exc.errors()[:MAX_ERRORS_PER_FILE]:
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc) or None
        node = None
        for cut in range(len(loc), 0, -1):
            node = positions.get(loc[:cut])
            if node is not None:
                break
        line, column = (
            (node.start_mark.line + 1 + line_offset, node.start_mark.column + 1) if node else (1, 1)
        )
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(AgentDefinition.model_fields)
            message = f"unknown field; allowed fields are {allowed}"
        elif err["type"] == "missing":
            message = "required field is missing"
            line, column = 1 + line_offset, 1
        errors.append(DefinitionError(path, message, line, column, dotted))
    return errors


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?\n?(.*)\Z", re.DOTALL | re.MULTILINE)


def _claude_to_definition(data: dict[str, Any], body: str) -> dict[str, Any]:
    """Map Claude Code sub-agent front-matter onto our fields.

    Claude's `tools` is a comma-separated list of its own tool names; we keep the ones we have an
    equivalent for and run in tools mode when any remain.
    """
    claude_tools = {
        "Read": "read_file",
        "Glob": "list_files",
        "LS": "list_files",
        "Grep": "search",
        "Edit": "propose_edit",
        "Write": "propose_edit",
        "MultiEdit": "propose_edit",
    }
    raw_tools = data.pop("tools", None)
    names = [t.strip() for t in raw_tools.split(",")] if isinstance(raw_tools, str) else []
    if isinstance(raw_tools, list):
        names = [str(t) for t in raw_tools]
    tools = sorted({claude_tools[t] for t in names if t in claude_tools})
    mcp = _claude_mcp_tools(names)
    out: dict[str, Any] = {
        "name": data.pop("name", None),
        "description": data.pop("description", None),
        "instructions": body.strip(),
        "mode": "tools" if tools or mcp else "answer",
        "tools": tools,
        "mcp": mcp or None,
    }
    data.pop("model", None)  # Claude model aliases (sonnet, opus) mean nothing to other backends
    data.pop("color", None)
    out.update(data)  # anything else is validated (and reported) like our own fields
    return {k: v for k, v in out.items() if v is not None}


def _claude_mcp_tools(names: list[str]) -> dict[str, Any]:
    """Claude's `mcp__server__tool` entries as our `mcp` allow-list (`mcp__server`: all its tools)."""
    mcp: dict[str, Any] = {}
    for name in names:
        parts = name.split("__")
        if parts[0] != "mcp" or len(parts) < 2 or not parts[1]:
            continue
        server = parts[1]
        if len(parts) == 2:
            mcp[server] = "*"
        elif mcp.get(server) != "*":
            mcp.setdefault(server, []).append("__".join(parts[2:]))
    return mcp


def parse_definition_text(
    text: str, path: Path, *, claude: bool = False
) -> tuple[AgentDefinition | None, list[DefinitionError]]:
    """Parse one definition file's text; returns the definition or the errors that stop it."""
    definition, errors, _ = parse_definition(text, path, claude=claude)
    return definition, errors


def _name_line(root: yaml.Node | None, line_offset: int) -> int:
    """The 1-based file line of the top-level `name` key (1 when there is none)."""
    if isinstance(root, yaml.MappingNode):
        for key_node, _ in root.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == "name":
                return key_node.start_mark.line + 1 + line_offset
    return 1 + line_offset


def parse_definition(
    text: str, path: Path, *, claude: bool = False
) -> tuple[AgentDefinition | None, list[DefinitionError], int]:
    """Like parse_definition_text, with the file line of the `name` field (for clash reports)."""
    line_offset = 0
    body = ""
    source = text
    if path.suffix == ".md":
        match = _FRONT_MATTER.match(text)
        if not match:
            return (
                None,
                [DefinitionError(path, "expected YAML front-matter between '---' lines")],
                1,
            )
        source, body = match.group(1), match.group(2)
        line_offset = 1
    try:
        root = compose_untrusted(source)
        duplicates = duplicate_keys(root) if root is not None else []
        if duplicates:
            return (
                None,
                [
                    DefinitionError(path, p.message, p.line + line_offset, p.column)
                    for p in duplicates
                ],
                1,
            )
        data = construct(root)
    except YamlProblem as exc:
        return None, [DefinitionError(path, exc.message, exc.line + line_offset, exc.column)], 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + 1 + line_offset) if mark else 1
        column = (mark.column + 1) if mark else 1
        return None, [DefinitionError(path, f"invalid YAML: {exc.problem or exc}", line, column)], 1
    except yaml.YAMLError as exc:
        return None, [DefinitionError(path, f"invalid YAML: {exc}", 1 + line_offset)], 1
    if not isinstance(data, dict):
        return None, [DefinitionError(path, "expected a mapping of fields (name: ..., ...)")], 1
    if isinstance(root, yaml.MappingNode):
        for key_node, _ in root.value:
            if key_node.tag != "tag:yaml.org,2002:str":
                mark = key_node.start_mark
                return (
                    None,
                    [
                        DefinitionError(
                            path,
                            f"field names are words such as 'name'; got {key_node.value!r}",
                            mark.line + 1 + line_offset,
                            mark.column + 1,
                        )
                    ],
                    1,
                )
    if path.suffix == ".md":
        if claude:
            data = _claude_to_definition(dict(data), body)
        elif body.strip() and "instructions" not in data:
            data = {**data, "instructions": body.strip()}
    name_line = _name_line(root, line_offset)
    try:
        return AgentDefinition.model_validate(data), [], name_line
    except ValidationError as exc:
        return None, _errors_from_validation(exc, path, root, line_offset), name_line


def load_file(path: Path, source: str, *, claude: bool = False) -> LoadResult:
    result = LoadResult()
    try:
        if path.stat().st_size > MAX_BYTES:
            result.errors.append(
                DefinitionError(path, f"the file is larger than {MAX_BYTES // 1024} KB")
            )
            return result
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        result.errors.append(DefinitionError(path, f"cannot read file: {exc}"))
        return result
    definition, errors, name_line = parse_definition(text, path, claude=claude)
    result.errors.extend(errors)
    if definition is not None:
        result.agents.append(LoadedAgent(definition, source, path, name_line))
    return result
