"""One run in flight (its mutable state and the events it makes) and what a finished run returns."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from agentls.core.definitions import AgentDefinition
from agentls.core.events import EventKind, RunEvent, RunStatus, Usage
from agentls.core.group_commit import Commit
from agentls.core.target import ProposedEdit, Target

EventListener = Callable[[RunEvent], None]
# Applies edits in the adapter (editor buffer, file, ...); returns one (applied, reason) per edit.
EditApplier = Callable[[list[ProposedEdit]], Awaitable[list[tuple[bool, str | None]]]]


class RunResult(BaseModel):
    run_id: str
    agent: str
    status: RunStatus
    text: str = ""
    edits: list[ProposedEdit] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    # Dollars the run's model calls cost (core/pricing.py); None when a call's model has no price.
    cost_usd: float | None = 0.0
    duration_ms: float = 0.0
    error: str | None = None
    parent_run_id: str | None = None
    # Things the user should know that did not stop the run (e.g. a provider's overshoot).
    warnings: list[str] = Field(default_factory=list)


class RunFailed(Exception):
    """Ends a run with status failed and this message."""


@dataclass(frozen=True)
class StructuredOutput:
    """Ask for JSON matching `schema`; `check` returns the problems of an answer (none: accepted).

    An answer with problems gets `repairs` more turns, each told exactly what was wrong.
    """

    schema: dict[str, Any]
    check: Callable[[str], list[str]]
    repairs: int = 1


@dataclass
class RunState:
    """The mutable state of one run in flight."""

    run_id: str
    definition: AgentDefinition
    goal: str
    target: Target | None
    parent_run_id: str | None
    depth: int
    budget: int | None
    ancestors: tuple[str, ...] = ()
    started: float = field(default_factory=time.monotonic)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    text: str = ""
    edits: list[ProposedEdit] = field(default_factory=list)
    turn: int = 0
    bad_tool_calls: int = 0
    streamed: list[str] = field(default_factory=list)
    structured: StructuredOutput | None = None
    repairs_used: int = 0
    warnings: list[str] = field(default_factory=list)
    # Audit commits of this run's events not yet awaited (AgentRuntime waits before each step).
    unsaved: list[Commit] = field(default_factory=list)

    def event(self, kind: EventKind, **fields: Any) -> RunEvent:
        return RunEvent(
            run_id=self.run_id,
            parent_run_id=self.parent_run_id,
            depth=self.depth,
            agent=self.definition.name,
            goal=self.goal,
            kind=kind,
            usage=self.usage,
            **fields,
        )

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0

    def closing_data(self) -> dict[str, Any]:
        """What the run's closing event records beside its usage: turns, cost, warnings."""
        data: dict[str, Any] = {"turns": self.turn, "cost_usd": self.cost_usd}
        if self.warnings:
            data["warnings"] = self.warnings
        return data

    def result(self, status: RunStatus, error: str | None) -> RunResult:
        return RunResult(
            run_id=self.run_id,
            agent=self.definition.name,
            status=status,
            text=self.text,
            edits=self.edits,
            usage=self.usage,
            cost_usd=self.cost_usd,
            duration_ms=self.elapsed_ms(),
            error=error,
            parent_run_id=self.parent_run_id,
            warnings=self.warnings,
        )

    def propose(self, edit: ProposedEdit, emit: EventListener) -> None:
        self.edits.append(edit)
        emit(self.event(EventKind.EDIT_PROPOSED, artifacts=[edit.model_dump(mode="json")]))
