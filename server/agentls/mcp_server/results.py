"""What the MCP tools return: a typed structure for programs and a text summary for models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from agentls.core.diff import unified_diff
from agentls.core.events import RunStatus, Usage
from agentls.core.pricing import format_usd, total_cost
from agentls.core.runtime import RunResult


class UsageOut(BaseModel):
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    estimated: bool

    @classmethod
    def of(cls, usage: Usage) -> UsageOut:
        return cls(
            input_tokens=usage.input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            total_tokens=usage.total,
            estimated=usage.estimated,
        )


class DelegateOutcome(BaseModel):
    """One run's result. `diff` holds the proposed edits; the server never writes them."""

    run_id: str
    agent: str
    status: str
    answer: str
    diff: str = ""
    edited_files: list[str] = Field(default_factory=list)
    # The same edits as data (path, range, new_text), for a program (or a parent run) to apply.
    edits: list[dict[str, Any]] = Field(default_factory=list)
    usage: UsageOut
    # The run's own calls plus those of every run it delegated (from the ledger).
    tree_usage: UsageOut
    # Dollars the run's own calls cost (core/pricing.py); null when a call's model has no price.
    cost_usd: float | None = 0.0
    duration_ms: float
    error: str | None = None
    parent_run_id: str | None = None
    depth: int = 0


class ParallelOutcome(BaseModel):
    results: list[DelegateOutcome]
    usage: UsageOut
    cost_usd: float | None = 0.0
    wall_ms: float
    counts: dict[str, int]


def outcome_of(
    workspace: Path, result: RunResult, depth: int, tree_usage: Usage
) -> DelegateOutcome:
    return DelegateOutcome(
        run_id=result.run_id,
        agent=result.agent,
        status=result.status.value,
        answer=result.text,
        diff=unified_diff(workspace, result.edits) if result.edits else "",
        edited_files=sorted({e.path for e in result.edits}),
        edits=[e.model_dump(mode="json") for e in result.edits],
        usage=UsageOut.of(result.usage),
        tree_usage=UsageOut.of(tree_usage),
        cost_usd=result.cost_usd,
        duration_ms=round(result.duration_ms, 1),
        error=result.error,
        parent_run_id=result.parent_run_id,
        depth=depth,
    )


def summary_of(outcome: DelegateOutcome) -> str:
    """The text a model (or a host that shows only text) reads: status, usage, answer, diff."""
    u = outcome.usage
    head = (
        f"{outcome.agent} {outcome.status} (run {outcome.run_id[:8]}, "
        f"{outcome.duration_ms / 1000:.1f} s, {u.total_tokens:,} tokens: "
        f"{u.input_tokens:,} in, {u.output_tokens:,} out{', estimated' if u.estimated else ''}"
    )
    if outcome.cost_usd is not None:
        head += f", {format_usd(outcome.cost_usd)}"
    if outcome.tree_usage.total_tokens > u.total_tokens:
        head += f"; {outcome.tree_usage.total_tokens:,} with the runs it delegated"
    head += ")"
    parts = [head]
    if outcome.error:
        parts.append(f"error: {outcome.error}")
    if outcome.answer:
        parts.append(outcome.answer)
    if outcome.diff:
        parts.append(
            "Proposed edits (not applied; apply them yourself if you agree):\n```diff\n"
            + outcome.diff
            + "```"
        )
    return "\n\n".join(parts)


def tool_result(structured: BaseModel, text: str, *, failed: bool) -> CallToolResult:
    data: dict[str, Any] = structured.model_dump(mode="json")
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=data, is_error=failed
    )


def delegate_result(outcome: DelegateOutcome) -> CallToolResult:
    failed = outcome.status != RunStatus.FINISHED.value
    return tool_result(outcome, summary_of(outcome), failed=failed)


def parallel_result(outcomes: list[DelegateOutcome], wall_ms: float) -> CallToolResult:
    total = Usage()
    counts: dict[str, int] = {}
    for o in outcomes:
        total = total + Usage(
            input_tokens=o.usage.input_tokens,
            cached_input_tokens=o.usage.cached_input_tokens,
            output_tokens=o.usage.output_tokens,
            reasoning_tokens=o.usage.reasoning_tokens,
            estimated=o.usage.estimated,
        )
        counts[o.status] = counts.get(o.status, 0) + 1
    cost = total_cost(o.cost_usd for o in outcomes)
    out = ParallelOutcome(
        results=outcomes,
        usage=UsageOut.of(total),
        cost_usd=cost,
        wall_ms=round(wall_ms, 1),
        counts=counts,
    )
    shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    dollars = f" ({format_usd(cost)})" if cost is not None else ""
    text = (
        f"{len(outcomes)} runs ({shown}), {total.total:,} tokens{dollars} in all\n\n"
        + "\n\n---\n\n".join(f"[{i}] {summary_of(o)}" for i, o in enumerate(outcomes, 1))
    )
    # The group succeeded as a call; each run's status is in its own entry.
    return tool_result(out, text, failed=False)
