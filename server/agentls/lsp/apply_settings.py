"""The settings in force, applied: the user's layers and the editor's answer merged (in an
untrusted workspace the answer may only tighten: core/settings_scope.py), then given to every
workspace folder's runtime (model, limits, budget, MCP servers, commands).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from agentls.core.settings_scope import Restricted, restrict_untrusted
from agentls.lsp.settings import parse_settings
from agentls.lsp.trust import tell_ignored, tell_limits_not_lowered, update_trust, workspace_trusted

if TYPE_CHECKING:
    from agentls.core.engine import EngineSettings, ModelPool
    from agentls.core.runtime import AgentRuntime
    from agentls.lsp.server import AgentLanguageServer


def apply_settings(ls: AgentLanguageServer, section: Any = None) -> None:
    """Apply the layers: the user's file, initializationOptions, then the editor's answer
    (`section`), which in an untrusted workspace may only tighten (core/settings_scope.py)."""
    user_layers = (ls.user_file.layer, ls.init_settings)
    merged, problems = parse_settings(*user_layers, section, previous=ls.settings)
    for problem in problems:
        ls.show_warning(problem)
    # A client that scopes its answers itself (VS Code) sends only what the user allowed.
    user = merged if ls.scoped_configuration else parse_settings(*user_layers)[0]
    trusted = workspace_trusted(ls, user, merged)
    restricted = Restricted(merged) if trusted else restrict_untrusted(merged, user)
    settings = restricted.settings
    # Only the agent folders change which definitions load (files changing is watched apart).
    reload = settings.agent_folders != ls.settings.agent_folders
    was_trusted = ls.trusted
    ls.settings, ls.lower_limits = settings, restricted.lower_limits
    update_trust(ls, trusted)
    tell_ignored(ls, restricted.ignored)
    for runtime in ls.folders.runtimes():
        configure_runtime(ls, runtime)
    if reload or ls.trusted != was_trusted:
        ls.folders.reload()


def configure_runtime(ls: AgentLanguageServer, runtime: AgentRuntime) -> None:
    """Apply the settings in force to a built runtime (model, limits, budget, MCP, commands)."""
    from agentls.core.engine import ModelPool, apply_mcp_settings

    engine = ls.engine_settings()
    old_pool = runtime.model_factory
    same_model = (
        isinstance(old_pool, ModelPool)
        and old_pool.settings.model_settings() == engine.model_settings()
    )
    if not same_model:
        runtime.model_factory = ModelPool(engine)
    runtime.config.max_parallel = engine.max_parallel
    runtime.config.max_depth = engine.max_depth
    runtime.config.max_output_tokens = engine.max_output_tokens
    runtime.config.default_run_budget = engine.budget.per_run
    runtime.config.budget_wait_seconds = engine.budget.wait_seconds
    runtime.config.min_output_tokens = engine.budget.min_output_tokens
    runtime.config.prices = dict(engine.prices)
    if runtime.commands is not None:
        runtime.commands.settings = engine.run_command
        runtime.commands.trusted = ls.trusted
    ls.keep(asyncio.get_running_loop().create_task(_apply_limits(ls, runtime, engine)))
    apply_mcp_settings(runtime, engine)
    if isinstance(old_pool, ModelPool) and not same_model:
        # Runs in flight still use the old pool's clients: close it once they end.
        ls.keep(
            asyncio.get_running_loop().create_task(
                _close_when_idle(old_pool, runtime, runtime.active_runs)
            )
        )


async def _apply_limits(
    ls: AgentLanguageServer, runtime: AgentRuntime, engine: EngineSettings
) -> None:
    """Write the settings' limits to the ledger off the loop (it may be locked a while)."""
    from agentls.core.engine import aapply_budget_settings

    try:
        await aapply_budget_settings(runtime.budgeter, engine.budget)
    except Exception as exc:
        ls.show_warning(f"agentls.budget: the limits could not be written to the ledger: {exc}")
        return
    if engine.budget.lower_total is not None or engine.budget.lower_per_agent:
        tell_limits_not_lowered(ls, engine.budget, await runtime.budgeter.asnapshot())


async def _close_when_idle(pool: ModelPool, runtime: AgentRuntime, run_ids: list[str]) -> None:
    while set(run_ids) & set(runtime.active_runs):
        await asyncio.sleep(0.5)
    await pool.aclose()
