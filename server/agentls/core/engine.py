"""Engine settings and the assembly of a workspace's runtime (registry, model, budget, audit).

Every adapter builds its runtime here, so the CLI, the language server and the MCP server agree
on where state lives and how settings apply.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from agentls.core.audit import AuditStore
from agentls.core.bounds import MAX_TOKENS
from agentls.core.budget import (
    DEFAULT_MIN_OUTPUT_TOKENS,
    DEFAULT_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
    TokenBudgeter,
)
from agentls.core.llm import ChatModel, ModelSettings
from agentls.core.mcp.config import McpServerSettings
from agentls.core.mcp.pool import DEFAULT_CALL_TIMEOUT, McpPool
from agentls.core.mcp.tools import McpToolProvider
from agentls.core.model_choice import create_model
from agentls.core.registry import AgentRegistry, default_sources
from agentls.core.runtime import AgentRuntime, RuntimeConfig
from agentls.core.stores.select import database_url
from agentls.core.telemetry import TelemetrySettings
from agentls.core.telemetry import attach as attach_telemetry
from agentls.core.tools.command import Approver, CommandPolicy, CommandSettings
from agentls.core.tools.delegation import ChildAgentls
from agentls.core.trust import inside

__all__ = ["McpServerSettings"]  # re-exported: adapters build settings from here

log = logging.getLogger(__name__)


# The most `budget.minOutputTokens` may ask for.
MAX_MIN_OUTPUT_TOKENS = 1_000_000


class BudgetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    per_run: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    per_agent: dict[str, Annotated[int, Field(ge=0, le=MAX_TOKENS)]] = Field(default_factory=dict)
    # How long a model call waits for other calls' reservations to settle before it is refused.
    wait_seconds: float = Field(default=DEFAULT_WAIT_SECONDS, ge=0, le=MAX_WAIT_SECONDS)
    # The smallest answer worth a model call: a call is granted at least this many output tokens
    # (or refused), and the last tokens of a budget go to calls of this size.
    min_output_tokens: int = Field(
        default=DEFAULT_MIN_OUTPUT_TOKENS, ge=1, le=MAX_MIN_OUTPUT_TOKENS
    )
    # Limits an untrusted workspace's own settings asked for (core/settings_scope.py): written to
    # the ledger only where they are below the limit in force, so they never raise it.
    lower_total: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    lower_per_agent: dict[str, Annotated[int, Field(ge=0, le=MAX_TOKENS)]] = Field(
        default_factory=dict
    )


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Events older than this many days are removed when a runtime starts; None keeps everything.
    retention_days: int | None = Field(default=None, ge=1)


class EngineSettings(BaseModel):
    """Everything a user can set; adapters fill it from their own sources."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    max_parallel: int = Field(default=8, ge=1, le=256)
    max_depth: int = Field(default=2, ge=0, le=8)
    max_output_tokens: int = Field(default=1024, ge=16)
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    # Seconds one MCP tool call may take before it is cancelled.
    mcp_call_timeout: float = Field(default=DEFAULT_CALL_TIMEOUT, gt=0, le=3600)
    agent_folders: list[Path] = Field(default_factory=list)
    # Generated agents get read-only tools unless this is set.
    allow_generated_edit_tools: bool = False
    audit: AuditSettings = Field(default_factory=AuditSettings)
    # In an untrusted workspace, its definitions and MCP servers are not loaded (core/trust.py).
    workspace_trusted: bool = True
    # run_command: off by default; never offered in an untrusted workspace.
    run_command: CommandSettings = Field(default_factory=CommandSettings)
    # The team's PostgreSQL database for the ledger and the audit trail (docs/team.md); None:
    # the files in `.agentls/`. `AGENTLS_DATABASE_URL` wins over it. From a workspace's own
    # settings it counts only once the workspace is trusted: libpq sends the password wherever
    # it points.
    database_url: str | None = Field(default=None, repr=False)
    # OpenTelemetry export (docs/telemetry.md); the OTEL_* variables configure the rest.
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    def model_settings(self) -> ModelSettings:
        return ModelSettings(model=self.model, base_url=self.base_url, api_key=self.api_key)


@dataclass
class ModelPool:
    """Creates each model backend once per name and reuses it (clients are costly to build)."""

    settings: EngineSettings

    def __post_init__(self) -> None:
        self._models: dict[str | None, ChatModel] = {}

    def __call__(self, name: str | None) -> ChatModel:
        key = name or self.settings.model
        if key not in self._models:
            base = self.settings.model_settings()
            self._models[key] = create_model(
                ModelSettings(model=key, base_url=base.base_url, api_key=base.api_key)
            )
        return self._models[key]

    async def aclose(self) -> None:
        for model in self._models.values():
            await model.aclose()
        self._models.clear()


def load_registry(workspace: Path | None, settings: EngineSettings) -> AgentRegistry:
    folders = [
        f if f.is_absolute() or workspace is None else workspace / f for f in settings.agent_folders
    ]
    if workspace is not None and not settings.workspace_trusted:
        folders = [f for f in folders if not inside(f, workspace)]
    return AgentRegistry.load(
        default_sources(workspace, folders, include_workspace=settings.workspace_trusted)
    )


def build_runtime(
    workspace: Path,
    settings: EngineSettings,
    *,
    registry: AgentRegistry | None = None,
    approver: Approver | None = None,
) -> AgentRuntime:
    """The runtime for a workspace with its persisted ledger and audit store (the workspace's
    files, or the team database that `AGENTLS_DATABASE_URL` or `settings.database_url` names)."""
    url = database_url(settings.database_url)
    budgeter = TokenBudgeter.for_workspace(workspace, database_url=url)
    try:
        apply_budget_settings(budgeter, settings.budget)
        audit = AuditStore.for_workspace(workspace, database_url=url)
    except BaseException:
        budgeter.close()
        raise
    audit.recover_interrupted()
    if settings.audit.retention_days is not None and not audit.shared:
        # A team's trail is pruned by its admins (`agentls audit prune`), not by each member.
        audit.prune(before=time.time() - settings.audit.retention_days * 86400)
    config = RuntimeConfig(
        max_output_tokens=settings.max_output_tokens,
        default_run_budget=settings.budget.per_run,
        budget_wait_seconds=settings.budget.wait_seconds,
        min_output_tokens=settings.budget.min_output_tokens,
        max_parallel=settings.max_parallel,
        max_depth=settings.max_depth,
    )
    runtime = AgentRuntime(
        workspace,
        registry if registry is not None else load_registry(workspace, settings),
        ModelPool(settings),
        budgeter,
        audit,
        config,
        commands=CommandPolicy(
            workspace.resolve(), settings.run_command, settings.workspace_trusted, approver
        ),
        extra_tools=McpToolProvider(
            McpPool(workspace, call_timeout=settings.mcp_call_timeout),
            settings.mcp_servers,
            trusted=settings.workspace_trusted,
        ),
    )
    # Orchestrating agents (`mcp: {agentls: [...]}`) delegate to a child agentls per run.
    # The child uses the same database, wherever its URL came from.
    child = settings.model_copy(update={"database_url": url})
    runtime.delegation_tools = ChildAgentls(
        workspace.resolve(), child.model_dump_json(), read_timeout=settings.mcp_call_timeout
    )
    # Only when an OTLP endpoint is configured (else OpenTelemetry is not even imported).
    attach_telemetry(runtime, settings.telemetry)
    return runtime


def apply_mcp_settings(runtime: AgentRuntime, settings: EngineSettings) -> None:
    """New MCP settings apply from the next run (changed servers restart when next used)."""
    provider = runtime.extra_tools
    if isinstance(provider, McpToolProvider):
        provider.editor_servers = dict(settings.mcp_servers)
        provider.trusted = settings.workspace_trusted
        provider.pool.call_timeout = settings.mcp_call_timeout
    if isinstance(runtime.delegation_tools, ChildAgentls):
        runtime.delegation_tools.read_timeout = settings.mcp_call_timeout


def budget_limits(budget: BudgetSettings) -> list[tuple[int | None, str | None]]:
    """The (limit, agent) pairs settings impose; agent None is the workspace total."""
    limits: list[tuple[int | None, str | None]] = []
    if budget.total is not None:
        limits.append((budget.total, None))
    limits.extend((limit, agent) for agent, limit in budget.per_agent.items())
    return limits


def lower_limits(budget: BudgetSettings) -> list[tuple[int, str | None]]:
    """The (limit, agent) pairs that may only lower the ledger's limits."""
    lower: list[tuple[int, str | None]] = []
    if budget.lower_total is not None:
        lower.append((budget.lower_total, None))
    lower.extend((limit, agent) for agent, limit in budget.lower_per_agent.items())
    return lower


def apply_budget_settings(budgeter: TokenBudgeter, budget: BudgetSettings) -> None:
    """Limits from settings win over limits stored in the ledger; unset ones leave it alone.
    The lowering-only limits then apply where they are below the limit in force.

    A team database's limits are its admins' (`agentls budget set`): one member's settings do not
    rewrite them, so there they are ignored, with a warning."""
    limits, lower = budget_limits(budget), lower_limits(budget)
    if (limits or lower) and not _team_ledger(budgeter):
        budgeter.set_limits(limits, lower=lower)


def _team_ledger(budgeter: TokenBudgeter) -> bool:
    if budgeter.shared:
        log.warning(
            "the budget limits in the settings (budget.total, budget.perAgent) are ignored: the "
            "team database's limits are set by its admins with `agentls budget set`"
        )
    return budgeter.shared


async def aapply_budget_settings(budgeter: TokenBudgeter, budget: BudgetSettings) -> None:
    """`apply_budget_settings` from async code: one transaction on the ledger's worker thread, so
    a ledger locked by another process never stalls the event loop. Changes apply in the order
    they were made."""
    limits, lower = budget_limits(budget), lower_limits(budget)
    if (limits or lower) and not _team_ledger(budgeter):
        await budgeter.aset_limits(limits, lower=lower)
