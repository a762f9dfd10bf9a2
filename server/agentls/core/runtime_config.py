"""What a runtime is configured with (RuntimeConfig), and what a run's own tool sources are told
of it (RunScope): apart from runtime.py, which delegation imports for them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentls.core.budget_grants import DEFAULT_MIN_OUTPUT_TOKENS, DEFAULT_WAIT_SECONDS
from agentls.core.definitions import AgentDefinition
from agentls.core.pricing import ModelPrice

if TYPE_CHECKING:
    from agentls.core.tools.base import Tool


@dataclass(frozen=True)
class RunScope:
    """Who is asking for per-run tools: the run, its place in a delegation tree, its budget."""

    run_id: str
    definition: AgentDefinition
    depth: int
    ancestor_run_ids: tuple[str, ...]
    budget: int | None


# Tools that live as long as one run (a child agentls to delegate to); entered at the run's
# start, exited at its end, whatever the end.
RunToolSource = Callable[[RunScope], contextlib.AbstractAsyncContextManager[dict[str, "Tool"]]]


@dataclass
class RuntimeConfig:
    max_output_tokens: int = 1024
    max_edit_output_tokens: int = 8192
    # Per-run budget when neither the call nor the definition names one.
    default_run_budget: int | None = None
    max_parallel: int = 8
    max_depth: int = 2
    # How long a model call waits for other runs' in-flight reservations before it is refused.
    budget_wait_seconds: float = DEFAULT_WAIT_SECONDS
    # The smallest answer a model call is granted (or it is refused): `budget.minOutputTokens`.
    min_output_tokens: int = DEFAULT_MIN_OUTPUT_TOKENS
    # The user's prices of models genai-prices does not know (the `prices` setting).
    prices: dict[str, ModelPrice] = field(default_factory=dict)
