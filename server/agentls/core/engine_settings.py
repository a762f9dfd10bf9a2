"""Everything a user can set for the engine (EngineSettings), apart from the engine itself: the
settings model and the CLI import it before answering anything, so it imports no SDK, no
database and no redaction (start-up stays as quick as a bare language server's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from agentls.core.bounds import MAX_SECONDS, MAX_TOKENS
from agentls.core.budget_grants import (
    DEFAULT_MIN_OUTPUT_TOKENS,
    DEFAULT_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
)
from agentls.core.llm import ModelSettings
from agentls.core.mcp_client.config import DEFAULT_CALL_TIMEOUT, McpServerSettings
from agentls.core.pricing import ModelPrice
from agentls.core.telemetry.settings import TelemetrySettings
from agentls.core.tools.command import CommandSettings

# The most `budget.minOutputTokens` may ask for.
MAX_MIN_OUTPUT_TOKENS = 1_000_000

# Each bound written once: the engine's settings below and the settings as users write them
# (core/settings.py) use these types, so the two cannot drift apart.
TokenLimit = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
RunLimit = Annotated[int, Field(gt=0, le=MAX_TOKENS)]
WaitSeconds = Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)]
MinOutputTokens = Annotated[int, Field(ge=1, le=MAX_MIN_OUTPUT_TOKENS)]
RetentionDays = Annotated[int, Field(ge=1, le=36_500)]
MaxParallel = Annotated[int, Field(ge=1, le=256)]
MaxDepth = Annotated[int, Field(ge=0, le=8)]
MaxOutputTokens = Annotated[int, Field(ge=16)]
CallTimeout = Annotated[float, Field(gt=0, le=MAX_SECONDS)]


class BudgetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total: TokenLimit | None = None
    per_run: RunLimit | None = None
    per_agent: dict[str, TokenLimit] = Field(default_factory=dict)
    # How long a model call waits for other calls' reservations to settle before it is refused.
    wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS
    # The smallest answer worth a model call: a call is granted at least this many output tokens
    # (or refused), and the last tokens of a budget go to calls of this size.
    min_output_tokens: MinOutputTokens = DEFAULT_MIN_OUTPUT_TOKENS
    # Limits an untrusted workspace's own settings asked for (core/settings_scope.py): written to
    # the ledger only where they are below the limit in force, so they never raise it.
    lower_total: TokenLimit | None = None
    lower_per_agent: dict[str, TokenLimit] = Field(default_factory=dict)


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Events older than this many days are removed when a runtime starts; None keeps everything.
    retention_days: RetentionDays | None = None


class EngineSettings(BaseModel):
    """Everything a user can set; adapters fill it from their own sources."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    max_parallel: MaxParallel = 8
    max_depth: MaxDepth = 2
    max_output_tokens: MaxOutputTokens = 1024
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    # Seconds one MCP tool call may take before it is cancelled.
    mcp_call_timeout: CallTimeout = DEFAULT_CALL_TIMEOUT
    agent_folders: list[Path] = Field(default_factory=list)
    # Generated agents get read-only tools unless this is set.
    allow_generated_edit_tools: bool = False
    audit: AuditSettings = Field(default_factory=AuditSettings)
    # In an untrusted workspace, its definitions and MCP servers are not loaded (core/trust.py).
    workspace_trusted: bool = True
    # run_command: off by default; never offered in an untrusted workspace.
    run_command: CommandSettings = Field(default_factory=CommandSettings)
    # OpenTelemetry export (docs/telemetry.md); the OTEL_* variables configure the rest.
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    # Prices (dollars per million tokens) of models genai-prices does not know: core/pricing.py.
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    # The team's PostgreSQL database for the ledger and the audit trail (docs/team.md); None:
    # the files in `.agentls/`. `AGENTLS_DATABASE_URL` wins over it. From a workspace's own
    # settings it counts only once the workspace is trusted: libpq sends the password wherever
    # it points.
    database_url: str | None = Field(default=None, repr=False)

    def model_settings(self) -> ModelSettings:
        return ModelSettings(model=self.model, base_url=self.base_url, api_key=self.api_key)
