"""One settings model for the editor: filled from initializationOptions, workspace/configuration
and workspace/didChangeConfiguration, camelCase on the wire, turned into EngineSettings.

Invalid values never stop the server: each problem is reported (naming the setting) and that
setting falls back to its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from agentls.core.engine import BudgetSettings, EngineSettings, McpServerSettings
from agentls.core.mcp.pool import DEFAULT_CALL_TIMEOUT
from agentls.core.tools.command import CommandSettings

_WIRE = ConfigDict(
    alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
    populate_by_name=True,
    extra="ignore",
)


class WireBudget(BaseModel):
    model_config = _WIRE
    total: int | None = Field(default=None, ge=0)
    per_run: int | None = Field(default=None, gt=0)
    per_agent: dict[str, int] = Field(default_factory=dict)


class WireRunCommand(CommandSettings):
    """`runCommand`: enabled, allow (patterns), timeoutSeconds, passEnv (see core/tools/command.py)."""

    model_config = _WIRE


class LspSettings(BaseModel):
    """The `agentls` settings section as editors send it."""

    model_config = _WIRE
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    budget: WireBudget = Field(default_factory=WireBudget)
    max_parallel: int = Field(default=8, ge=1, le=256)
    max_depth: int = Field(default=2, ge=0, le=8)
    max_output_tokens: int = Field(default=1024, ge=16)
    # The same entries as the mcpServers files: `command`/`args`/`env`, or `url`/`headers`.
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    mcp_call_timeout: float = Field(default=DEFAULT_CALL_TIMEOUT, gt=0, le=3600)
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

    def engine(self, *, trusted: bool) -> EngineSettings:
        return EngineSettings(
            model=self.model or None,
            base_url=self.base_url or None,
            api_key=self.api_key or None,
            budget=BudgetSettings(**self.budget.model_dump()),
            max_parallel=self.max_parallel,
            max_depth=self.max_depth,
            max_output_tokens=self.max_output_tokens,
            mcp_servers=dict(self.mcp_servers),
            mcp_call_timeout=self.mcp_call_timeout,
            agent_folders=[Path(p).expanduser() for p in self.agent_folders],
            allow_generated_edit_tools=self.allow_generated_edit_tools,
            workspace_trusted=trusted,
            run_command=CommandSettings(**self.run_command.model_dump()),
        )


def _drop(data: dict[str, Any], loc: tuple[Any, ...]) -> None:
    """Remove the offending top-level setting so the rest still applies.

    One bad MCP server drops only that server: the others stay usable.
    """
    if not loc or not isinstance(data, dict):
        return
    servers = data.get("mcpServers")
    if loc[0] == "mcpServers" and len(loc) > 1 and isinstance(servers, dict):
        data["mcpServers"] = {k: v for k, v in servers.items() if k != str(loc[1])}
        return
    data.pop(str(loc[0]), None)


def parse_settings(*layers: Any) -> tuple[LspSettings, list[str]]:
    """Merge layers (later wins, key by key at the top level) and validate.

    Returns the settings and one message per invalid setting (which falls back to its default).
    """
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, dict):
            problems.append(f"agentls settings must be an object, got {type(layer).__name__}")
            continue
        merged.update({k: v for k, v in layer.items() if v is not None})
    for _ in range(len(merged) + 1):
        try:
            return LspSettings.model_validate(merged), problems
        except ValidationError as exc:
            for err in exc.errors():
                name = "agentls." + ".".join(str(p) for p in err["loc"])
                problems.append(f"setting {name}: {err['msg']}; using the default")
                _drop(merged, tuple(err["loc"]))
    return LspSettings(), problems
