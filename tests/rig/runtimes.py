"""An AgentRuntime over the scripted model, with the agents a test names (one place for the set-up
that engine-level tests share)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.definitions import AgentDefinition, LoadedAgent
from agentls.core.llm import ModelSettings
from agentls.core.llm_openai import OpenAIChatModel
from agentls.core.registry import AgentRegistry
from agentls.core.runtime import AgentRuntime, RuntimeConfig


def scripted_model(url: str, model: str = "scripted-model", **settings: Any) -> OpenAIChatModel:
    """The OpenAI-compatible backend pointed at a scripted server."""
    return OpenAIChatModel(ModelSettings(model=model, base_url=url, api_key="sk-test", **settings))


def runtime_over(
    workspace: Path,
    model: OpenAIChatModel,
    agents: Iterable[AgentDefinition] = (),
    *,
    on_disk: bool = False,
    audit: AuditStore | None = None,
    **extras: Any,
) -> AgentRuntime:
    """A runtime whose every agent uses `model` (answers of at most 256 tokens).

    With `on_disk` the ledger and the audit trail are the workspace's files; otherwise both live
    in memory (unless `audit` is given). `extras` go to AgentRuntime (commands, extra_tools...).
    """
    registry = AgentRegistry()
    for definition in agents:
        registry.add(LoadedAgent(definition, "builtin"))
    return AgentRuntime(
        workspace,
        registry,
        lambda name: model,
        TokenBudgeter.for_workspace(workspace) if on_disk else TokenBudgeter(None),
        audit or (AuditStore.for_workspace(workspace) if on_disk else AuditStore(None)),
        RuntimeConfig(max_output_tokens=256),
        **extras,
    )
