"""Typed arguments of the server's commands; a bad argument becomes InvalidParams naming it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Literal, TypeVar

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pygls.exceptions import JsonRpcInvalidParams

from agentls.core.bounds import MAX_GOAL_CHARS, MAX_TOKENS

_ARGS = ConfigDict(
    alias_generator=AliasGenerator(validation_alias=to_camel),
    populate_by_name=True,
    extra="forbid",
)


# LSP positions are uintegers (at most 2^31 - 1); token counts and goals have agentls' own bounds.
MAX_POSITION = 2**31 - 1


class WirePosition(BaseModel):
    model_config = _ARGS
    line: int = Field(ge=0, le=MAX_POSITION)
    character: int = Field(ge=0, le=MAX_POSITION)


class WireRange(BaseModel):
    model_config = _ARGS
    start: WirePosition
    end: WirePosition


class DelegateArgs(BaseModel):
    model_config = _ARGS
    agent: str = Field(min_length=1)
    goal: str | None = Field(default=None, max_length=MAX_GOAL_CHARS)
    uri: str = Field(min_length=1)
    range: WireRange | None = None
    budget: int | None = Field(default=None, gt=0, le=MAX_TOKENS)


class TaskArgs(BaseModel):
    model_config = _ARGS
    agent: str = Field(min_length=1)
    goal: str | None = Field(default=None, max_length=MAX_GOAL_CHARS)
    uri: str | None = None
    range: WireRange | None = None
    budget: int | None = Field(default=None, gt=0, le=MAX_TOKENS)


class DelegateParallelArgs(BaseModel):
    model_config = _ARGS
    tasks: list[TaskArgs] = Field(min_length=1)
    max_parallel: int | None = Field(default=None, ge=1, le=256)


class CreateAgentArgs(BaseModel):
    model_config = _ARGS
    prompt: str = Field(min_length=1, max_length=MAX_GOAL_CHARS)
    goal: str | None = Field(default=None, max_length=MAX_GOAL_CHARS)
    uri: str | None = None
    range: WireRange | None = None
    budget: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    save: bool = False
    run: bool = True


class CancelArgs(BaseModel):
    model_config = _ARGS
    run_id: str | None = None


class BudgetArgs(BaseModel):
    model_config = _ARGS
    action: Literal["get", "set", "reset"] = "get"
    # Tokens as a number, or text as `agentls budget set` takes it: '2M', '$50', 'none'
    # (core/budget_set.py parses it).
    limit: int | str | None = None
    per: Literal["day", "week", "month"] | None = None
    agent: str | None = None
    user: str | None = None
    allow_unknown_agent: bool = False

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, value: object) -> object:
        # One sentence for what is neither (`true` is not one token).
        if isinstance(value, bool) or not isinstance(value, int | str | None):
            raise ValueError(
                "expected a number of tokens or text such as '2M', '$50' or 'none', "
                f"got {type(value).__name__}"
            )
        if isinstance(value, int) and not 0 <= value <= MAX_TOKENS:
            raise ValueError(f"expected a number of tokens from 0 to {MAX_TOKENS:,}, got {value}")
        if isinstance(value, str) and len(value) > 100:
            raise ValueError("is longer than any limit (100 characters)")
        return value


def check_known_agent(command: str, agent: str, known: Iterable[str]) -> None:
    """A limit or reset for an agent nobody defined is a typo until said otherwise."""
    names = sorted(known)
    if agent in names:
        return
    close = difflib.get_close_matches(agent, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise JsonRpcInvalidParams(
        f"{command}: argument 'agent' {agent!r} names no agent of this workspace; {hint}"
        "pass allowUnknownAgent: true to set it anyway"
    )


class AuditArgs(BaseModel):
    model_config = _ARGS
    run_id: str | None = None
    agent: str | None = None
    since: float | None = Field(default=None, ge=0)  # epoch seconds
    limit: int = Field(default=200, ge=1, le=10_000)


M = TypeVar("M", bound=BaseModel)


def parse_args(command: str, model: type[M], raw: tuple[Any, ...]) -> M:
    """The command's one object argument, validated; errors name the argument at fault."""
    if len(raw) > 1:
        raise JsonRpcInvalidParams(f"{command}: expected one object argument, got {len(raw)}")
    value = raw[0] if raw else {}
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise JsonRpcInvalidParams(
            f"{command}: expected one object argument, got {type(value).__name__}"
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "argument"
            msg = "is required" if err["type"] == "missing" else err["msg"]
            msg = msg.removeprefix("Value error, ")  # our validators' sentences stand alone
            if err["type"] == "extra_forbidden":
                msg = "is not an argument of this command"
            problems.append(f"argument '{name}' {msg}")
        raise JsonRpcInvalidParams(f"{command}: " + "; ".join(problems)) from None
