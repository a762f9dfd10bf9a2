"""Engine settings and the assembly of a workspace's runtime (registry, model, budget, audit).

Every adapter builds its runtime here, so the CLI, the language server and the MCP server agree
on where state lives and how settings apply.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from agentls.core.audit import AuditStore
from agentls.core.budget import (
    TokenBudgeter,
)
from agentls.core.engine_settings import (
    MAX_MIN_OUTPUT_TOKENS,
    AuditSettings,
    BudgetSettings,
    EngineSettings,
)
from agentls.core.llm import ChatModel, ModelSettings
from agentls.core.mcp_client.config import McpServerSettings
from agentls.core.mcp_client.pool import McpPool
from agentls.core.mcp_client.tools import McpToolProvider
from agentls.core.model_choice import create_model
from agentls.core.registry import AgentRegistry, default_sources
from agentls.core.runtime import AgentRuntime, RuntimeConfig
from agentls.core.stores.select import database_url
from agentls.core.telemetry import attach as attach_telemetry
from agentls.core.tools.command import Approver, CommandPolicy
from agentls.core.tools.delegation import ChildAgentls
from agentls.core.trust import inside

# Re-exported: adapters build settings from here (light modules import engine_settings itself).
__all__ = [
    "MAX_MIN_OUTPUT_TOKENS",
    "AuditSettings",
    "BudgetSettings",
    "EngineSettings",
    "McpServerSettings",
]

log = logging.getLogger(__name__)


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
        prices=dict(settings.prices),
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
