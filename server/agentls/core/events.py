"""Run events and token usage: the one stream every adapter (audit, LSP, CLI, MCP) renders."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Usage(BaseModel):
    """Tokens one model call (or a sum of calls) consumed, kept by part."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    # True when any part was counted by us (tokenizer or byte bound) rather than reported by the provider.
    estimated: bool = False

    @property
    def total(self) -> int:
        """Tokens that count against a budget: input (cached included) plus output.

        Reasoning tokens are part of output for OpenAI-style providers, so they are not added twice.
        """
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            estimated=self.estimated or other.estimated,
        )


class EventKind(StrEnum):
    STARTED = "started"
    MODEL_CALL = "model_call"
    # A tool call about to run; delivered live (progress) but not persisted: TOOL_CALL records it.
    TOOL_STARTED = "tool_started"
    # What a run waits on next (`data["for"]`: "budget" or "model"); live only, like TOOL_STARTED:
    # front ends use it to say what a long silence is.
    WAITING = "waiting"
    TOOL_CALL = "tool_call"
    EDIT_PROPOSED = "edit_proposed"
    EDIT_APPLIED = "edit_applied"
    EDIT_REJECTED = "edit_rejected"
    # Streamed text; delivered live to adapters but never persisted one by one (see OUTPUT).
    OUTPUT_DELTA = "output_delta"
    OUTPUT = "output"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"
    INTERRUPTED = "interrupted"


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"
    INTERRUPTED = "interrupted"


# Delivered to live listeners only; the audit trail keeps their lasting counterparts.
TRANSIENT_KINDS = frozenset({EventKind.OUTPUT_DELTA, EventKind.TOOL_STARTED, EventKind.WAITING})

TERMINAL_KINDS = frozenset(
    {
        EventKind.FINISHED,
        EventKind.FAILED,
        EventKind.CANCELLED,
        EventKind.BUDGET_EXCEEDED,
        EventKind.INTERRUPTED,
    }
)


def new_id() -> str:
    return uuid.uuid4().hex


class RunEvent(BaseModel):
    """One step of a run. Closing events (TERMINAL_KINDS) carry the run's totals.

    `usage` is the run's cumulative usage at the time of the event; for MODEL_CALL events
    `data["call_usage"]` holds that call's own usage.
    """

    event_id: str = Field(default_factory=new_id)
    time: float = Field(default_factory=time.time)
    run_id: str
    parent_run_id: str | None = None
    depth: int = 0
    agent: str
    goal: str
    kind: EventKind
    status: RunStatus = RunStatus.RUNNING
    usage: Usage = Field(default_factory=Usage)
    duration_ms: float | None = None
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
    # Kind-specific details: turn, tool name + argument summary, delta text, model name...
    data: dict[str, Any] = Field(default_factory=dict)
    # Who ran it, on what, through which front end (core/who.py): `alice@laptop`, the workspace's
    # git remote (else its folder name), and cli / lsp / acp / mcp.
    user: str | None = None
    workspace: str | None = None
    front_end: str | None = None
    # Live only, never persisted or sent (excluded from every dump): the raw content behind the
    # event (a model call's messages and answer, a tool call's arguments and result, a run's
    # answer) for in-process listeners that may export it redacted (telemetry.captureContent).
    content: dict[str, Any] | None = Field(default=None, exclude=True, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS

    def execution_record(self) -> dict[str, Any]:
        """The fields users of the original AgentExecutionEvent rely on (closing events)."""
        return {
            "agent_name": self.agent,
            "goal": self.goal,
            "status": self.status.value,
            "tokens_used": self.usage.total,
            "duration": (self.duration_ms or 0.0) / 1000.0,
            "artifacts": self.artifacts,
            "error": self.error,
        }
