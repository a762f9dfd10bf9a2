"""One settings model, as users write it: the editor's `agentls` section (initializationOptions,
workspace/configuration, workspace/didChangeConfiguration) and the user's settings file
(`user_settings.py`), camelCase, turned into EngineSettings.

Invalid values never stop the server: each problem is reported (naming the exact key, e.g.
`agentls.budget.perRun`) and only that key keeps the value in force before (its default at first),
so a typo in one limit never lifts the others. This model is the one source of the settings schema:
`lsp/settings_schema.py` derives the VS Code contribution from it and a test checks package.json.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from agentls.core.budget_grants import (
    DEFAULT_MIN_OUTPUT_TOKENS,
    DEFAULT_WAIT_SECONDS,
)
from agentls.core.engine_settings import (
    AuditSettings,
    BudgetSettings,
    CallTimeout,
    EngineSettings,
    MaxDepth,
    MaxOutputTokens,
    MaxParallel,
    MinOutputTokens,
    RetentionDays,
    RunLimit,
    TokenLimit,
    WaitSeconds,
)
from agentls.core.mcp_client.config import DEFAULT_CALL_TIMEOUT, McpServerSettings
from agentls.core.pricing import ModelPrice
from agentls.core.stores.postgres import database_url_setting
from agentls.core.telemetry.settings import TelemetrySettings, endpoint_url
from agentls.core.tools.command import CommandSettings

_WIRE = ConfigDict(
    alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
    populate_by_name=True,
    extra="ignore",
)


class WireBudget(BaseModel):
    model_config = _WIRE
    total: TokenLimit | None = None
    per_run: RunLimit | None = None
    per_agent: dict[str, TokenLimit] = Field(default_factory=dict)
    wait_seconds: WaitSeconds = DEFAULT_WAIT_SECONDS
    min_output_tokens: MinOutputTokens = DEFAULT_MIN_OUTPUT_TOKENS


class WireAudit(BaseModel):
    model_config = _WIRE
    retention_days: RetentionDays | None = None


class WireRunCommand(CommandSettings):
    """`runCommand`: enabled, allow (patterns), timeoutSeconds, passEnv (see core/tools/command.py)."""

    model_config = _WIRE


class WireTelemetry(BaseModel):
    """`telemetry`: otlpEndpoint, captureContent (see docs/telemetry.md)."""

    model_config = _WIRE
    otlp_endpoint: str | None = None
    capture_content: bool = False

    @field_validator("otlp_endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return endpoint_url(value)


class Settings(BaseModel):
    """The `agentls` settings section as editors send it and the user's settings file holds it."""

    model_config = _WIRE
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    budget: WireBudget = Field(default_factory=WireBudget)
    max_parallel: MaxParallel = 8
    max_depth: MaxDepth = 2
    max_output_tokens: MaxOutputTokens = 1024
    # The same entries as the mcpServers files: `command`/`args`/`env`, or `url`/`headers`.
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    mcp_call_timeout: CallTimeout = DEFAULT_CALL_TIMEOUT
    agent_folders: list[str] = Field(default_factory=list)
    allow_generated_edit_tools: bool = False
    run_command: WireRunCommand = Field(default_factory=WireRunCommand)
    # Every agent edit goes to the editor marked as needing the user's confirmation.
    confirm_edits: bool = False
    # Workspace trust for editors without their own (VS Code sends it from its workspace trust);
    # unset: untrusted unless the client said otherwise or the folder is in trustedFolders.
    trust_workspace: bool | None = None
    trusted_folders: list[str] = Field(default_factory=list)

    @field_validator("trusted_folders")
    @classmethod
    def _absolute(cls, folders: list[str]) -> list[str]:
        for folder in folders:
            if not Path(folder).expanduser().is_absolute():
                raise ValueError(f"{folder!r} is not an absolute path (or ~/...)")
        return folders

    audit: WireAudit = Field(default_factory=WireAudit)
    telemetry: WireTelemetry = Field(default_factory=WireTelemetry)
    # Dollars per million tokens of models genai-prices does not know (core/pricing.py).
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    # The team's PostgreSQL database (docs/team.md); `AGENTLS_DATABASE_URL` wins over it.
    database_url: str | None = Field(default=None, repr=False)

    @field_validator("database_url")
    @classmethod
    def _no_password(cls, url: str | None) -> str | None:
        return database_url_setting(url)

    def engine(
        self, *, trusted: bool, lower_limits: Mapping[str | None, int] | None = None
    ) -> EngineSettings:
        """The engine's settings; `lower_limits` (agent None: the total) may only lower the
        ledger's limits (an untrusted workspace's own, see settings_scope.py)."""
        lower = dict(lower_limits or {})
        return EngineSettings(
            model=self.model or None,
            base_url=self.base_url or None,
            api_key=self.api_key or None,
            budget=BudgetSettings(
                **self.budget.model_dump(),
                lower_total=lower.pop(None, None),
                lower_per_agent={agent: limit for agent, limit in lower.items() if agent},
            ),
            max_parallel=self.max_parallel,
            max_depth=self.max_depth,
            max_output_tokens=self.max_output_tokens,
            mcp_servers=dict(self.mcp_servers),
            mcp_call_timeout=self.mcp_call_timeout,
            agent_folders=[Path(p).expanduser() for p in self.agent_folders],
            allow_generated_edit_tools=self.allow_generated_edit_tools,
            audit=AuditSettings(**self.audit.model_dump()),
            workspace_trusted=trusted,
            run_command=CommandSettings(**self.run_command.model_dump()),
            telemetry=TelemetrySettings(
                otlp_endpoint=self.telemetry.otlp_endpoint or None,
                capture_content=self.telemetry.capture_content,
            ),
            prices=dict(self.prices),
            database_url=self.database_url or None,
        )


_MISSING = object()


def _lookup(data: Any, path: list[Any]) -> Any:
    for key in path:
        if (isinstance(data, dict) and key in data) or (
            isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data)
        ):
            data = data[key]
        else:
            return _MISSING
    return data


def _replace(
    data: dict[str, Any], loc: tuple[Any, ...], previous: dict[str, Any]
) -> tuple[Any, ...] | None:
    """Put back the previous value of the invalid key at `loc`, or remove the key; the path
    changed, or None.

    A missing required field invalidates the object that needs it (an MCP server without
    `command`): that object is what gets replaced.
    """
    path = list(loc)
    while path and _lookup(data, path) is _MISSING:
        path.pop()
    if not path:
        return None
    parent = _lookup(data, path[:-1])
    key = path[-1]
    before = _lookup(previous, path)
    if isinstance(parent, dict):
        if before is _MISSING:
            del parent[key]
        else:
            parent[key] = before
        return tuple(path)
    if isinstance(parent, list) and isinstance(key, int):
        del parent[key]
        return tuple(path)
    return None


def parse_settings(*layers: Any, previous: Settings | None = None) -> tuple[Settings, list[str]]:
    """Merge layers (later wins key by key, inside `budget`, `audit`, ... too) and validate.

    Returns the settings and one message per invalid key, which keeps its value from `previous`
    (the settings in force) or else its default; its siblings still apply.
    """
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, dict):
            problems.append(f"agentls settings must be an object, got {type(layer).__name__}")
            continue
        _merge_into(merged, layer, Settings)
    before = (previous or Settings()).model_dump(by_alias=True)
    for _ in range(64):
        try:
            settings = Settings.model_validate(merged)
            budget = merged.get("budget")
            given = isinstance(budget, dict) and budget.get("minOutputTokens") is not None
            return _bounded_minimum(settings, problems if given else []), problems
        except ValidationError as exc:
            changed: list[tuple[Any, ...]] = []
            # Later list items first, so removing one does not shift the others' positions.
            for err in sorted(
                exc.errors(),
                key=lambda e: [(1, p) if isinstance(p, int) else (0, str(p)) for p in e["loc"]],
                reverse=True,
            ):
                loc = tuple(err["loc"])
                if any(loc[: len(done)] == done for done in changed):
                    continue  # inside an object already replaced: its siblings stay as they are
                name = "agentls." + ".".join(str(p) for p in err["loc"])
                if err["loc"] and isinstance(err["loc"][-1], int):
                    kept = "leaving out that entry"  # one bad entry of a list, not the list
                else:
                    kept = "keeping " + (
                        "the previous value" if previous is not None else "the default"
                    )
                problems.append(f"setting {name}: {err['msg']}; {kept}")
                if (path := _replace(merged, loc, before)) is not None:
                    changed.append(path)
            if not changed:
                break
    return previous or Settings(), problems


def _merge_into(merged: dict[str, Any], layer: dict[str, Any], model: type[BaseModel]) -> None:
    """Lay `layer` over `merged` key by key: a settings object (`budget`, `runCommand`, ...)
    merges its keys, so a workspace's `budget.perAgent` keeps the user's `budget.total`; a map
    (`budget.perAgent`, `mcpServers`, `prices`) merges its entries, each replaced whole (one
    server's command and another layer's args would make a server no one wrote). A null value
    leaves the layer below in force."""
    fields = {to_camel(name): info for name, info in model.model_fields.items()}
    fields |= model.model_fields
    for key, value in layer.items():
        if value is None:
            continue
        below = merged.get(key)
        info = fields.get(key)
        nested = info.annotation if info is not None else None
        if isinstance(value, dict) and isinstance(below, dict):
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                _merge_into(below, value, nested)
                continue
            if _is_map(nested):
                below.update({k: copy.deepcopy(v) for k, v in value.items() if v is not None})
                continue
        merged[key] = copy.deepcopy(value)


def _is_map(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is dict


def _bounded_minimum(settings: Settings, problems: list[str]) -> Settings:
    """A minimum answer above `maxOutputTokens` could never be granted: the maximum wins (a
    minimum the user set is reported in `problems`; the default follows silently)."""
    most = settings.max_output_tokens
    if settings.budget.min_output_tokens <= most:
        return settings
    problems.append(
        f"setting agentls.budget.minOutputTokens: {settings.budget.min_output_tokens:,} is more "
        f"than agentls.maxOutputTokens ({most:,}), which bounds every model call; using {most:,}"
    )
    budget = settings.budget.model_copy(update={"min_output_tokens": most})
    return settings.model_copy(update={"budget": budget})
