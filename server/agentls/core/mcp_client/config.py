"""Which MCP servers exist: the `mcpServers` files and the editor setting, merged by name.

Sources, lowest precedence first (a later source replaces an earlier server of the same name):
the user's `~/.config/agentls/mcp.json`, the project's `.mcp.json` (the file Claude Code and
others write), the workspace's `.agentls/mcp.json`, then the editor setting `agentls.mcpServers`.
The two workspace files are read only in a trusted workspace. A file that cannot be read or a
server entry that is invalid becomes an error naming the file and field; the rest still loads.

`${workspaceFolder}` in any source means the workspace's absolute path: the user's servers run
outside the workspace (core/mcp_client/pool.py), so they are given it by name, never as `.`.
"""

from __future__ import annotations

import json
import os
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The reserved server name: in a definition's `mcp:` it is the child agentls each orchestrating run
# starts itself (core/tools/delegation.py), never a configured server.
CHILD_SERVER = "agentls"
# What a child agentls needs to reach the model and the team database the parent uses: an MCP
# stdio server gets only HOME, PATH and the like from the environment, so these are passed to
# agentls children by name.
MODEL_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "AGENTLS_MODEL",
    "PYTHONPATH",
    "AGENTLS_DATABASE_URL",
    "AGENTLS_USER",
    "PGPASSWORD",
    "PGPASSFILE",
)
# Seconds one MCP tool call may take before it is cancelled (the `mcpCallTimeout` default).
DEFAULT_CALL_TIMEOUT = 60.0
USER_SOURCE = "user"
PROJECT_SOURCE = "project"
WORKSPACE_SOURCE = "workspace"
EDITOR_SOURCE = "editor setting"
MAX_CONFIG_BYTES = 1_000_000
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# VS Code's name, which its client substitutes in the editor setting too.
WORKSPACE_VARIABLE = "workspaceFolder"


class McpServerSettings(BaseModel):
    """One server: a program on stdio (`command`, `args`, `env`) or a Streamable HTTP `url`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | None = Field(default=None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = Field(default=None, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    # Other hosts' files say which transport; agentls reads it from command/url.
    type: Literal["stdio", "http", "streamable-http"] | None = None

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                'give exactly one of "command" (a program on stdio) or "url" (Streamable HTTP)'
            )
        if self.url is not None and (self.args or self.env):
            raise ValueError('"args" and "env" apply to a "command" server, not a "url" one')
        if self.command is not None and self.headers:
            raise ValueError('"headers" apply to a "url" server, not a "command" one')
        if self.type == "stdio" and self.command is None:
            raise ValueError('"type": "stdio" needs a "command"')
        if self.type in ("http", "streamable-http") and self.url is None:
            raise ValueError(f'"type": "{self.type}" needs a "url"')
        return self

    @property
    def is_agentls(self) -> bool:
        """Whether this server is agentls itself (`agentls mcp-server`, `python -m agentls ...`)."""
        if self.command is None:
            return False
        program = Path(self.command).name
        if program == "agentls":
            return True
        args = [a for a in self.args if a not in ("-P", "-I", "-u", "-B", "-E", "-s")]
        return program.startswith("python") and args[:2] == ["-m", "agentls"]

    def child_env(self) -> dict[str, str]:
        """The environment to start it with: its own `env`, and for an agentls server the model
        connection of this process too (its `env` wins), as a delegation child gets it."""
        if not self.is_agentls:
            return dict(self.env)
        return {k: os.environ[k] for k in MODEL_ENV if k in os.environ} | dict(self.env)

    def describe(self) -> str:
        """How the server is reached, for messages: the command line or the URL."""
        if self.url is not None:
            return self.url
        return " ".join([self.command or "", *self.args])


@dataclass(frozen=True)
class ConfiguredServer:
    name: str
    settings: McpServerSettings
    source: str  # USER_SOURCE, ..., with the file when it came from one
    path: Path | None = None

    @property
    def origin(self) -> str:
        return f"{self.source} ({self.path})" if self.path is not None else self.source

    @property
    def from_workspace(self) -> bool:
        """Declared by the workspace's own files, which are read only when it is trusted."""
        return self.source in (PROJECT_SOURCE, WORKSPACE_SOURCE)


@dataclass
class McpConfig:
    servers: dict[str, ConfiguredServer] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # Servers of the workspace files left out because the workspace is not trusted.
    untrusted: list[str] = field(default_factory=list)
    # name -> where the servers of that name that a later source replaced came from.
    replaced: dict[str, list[str]] = field(default_factory=dict)

    def add(self, server: ConfiguredServer) -> None:
        """`server` in force under its name; one of that name from an earlier source is noted."""
        if (earlier := self.servers.get(server.name)) is not None:
            self.replaced.setdefault(server.name, []).append(earlier.origin)
        self.servers[server.name] = server


def user_config_file() -> Path:
    return Path.home() / ".config" / "agentls" / "mcp.json"


def workspace_config_file(workspace: Path) -> Path:
    return workspace / ".agentls" / "mcp.json"


def project_config_file(workspace: Path) -> Path:
    return workspace / ".mcp.json"


def load_mcp_config(
    workspace: Path | None,
    editor_servers: Mapping[str, McpServerSettings] | None = None,
    *,
    trusted: bool = True,
) -> McpConfig:
    """Every source merged, later wins by name. Reads files: call it off the event loop."""
    config = McpConfig()
    files: list[tuple[str, Path]] = [(USER_SOURCE, user_config_file())]
    if workspace is not None:
        files.append((PROJECT_SOURCE, project_config_file(workspace)))
        files.append((WORKSPACE_SOURCE, workspace_config_file(workspace)))
    untrusted: set[str] = set()
    for source, path in files:
        servers, errors = read_config_file(path, source, workspace)
        if source != USER_SOURCE and not trusted:
            untrusted.update(servers)  # named in errors later, never started
            continue
        config.errors.extend(errors)
        for server in servers.values():
            config.add(server)
    for name, settings in (editor_servers or {}).items():
        if workspace is not None:
            settings = with_workspace_folder(settings, workspace)
        config.add(ConfiguredServer(name, settings, EDITOR_SOURCE))
    config.untrusted = sorted(untrusted - set(config.servers))
    return config


def read_config_file(
    path: Path, source: str, workspace: Path | None = None
) -> tuple[dict[str, ConfiguredServer], list[str]]:
    """The servers of one `{"mcpServers": {...}}` file and one error per problem in it."""
    variables: Mapping[str, str] = os.environ
    if workspace is not None:
        variables = ChainMap({WORKSPACE_VARIABLE: str(workspace.absolute())}, os.environ)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return {}, [f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not read"]
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"{path}: cannot read: {exc}"]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, [f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"]
    if not isinstance(data, dict):
        return {}, [f'{path}: expected an object with an "mcpServers" field']
    entries = data.get("mcpServers", {})
    if not isinstance(entries, dict):
        return {}, [f"{path}: mcpServers: expected an object of server name to server"]
    servers: dict[str, ConfiguredServer] = {}
    errors: list[str] = []
    for name, entry in entries.items():
        try:
            settings = McpServerSettings.model_validate(expand_variables(entry, variables))
        except ValidationError as exc:
            errors.extend(
                f"{path}: {msg}" for msg in validation_messages(f"mcpServers.{name}", exc)
            )
            continue
        except KeyError as exc:
            if exc.args[0] == WORKSPACE_VARIABLE:
                why = "${workspaceFolder} needs a workspace, and this command has none"
            else:
                why = (
                    f"environment variable {exc.args[0]} is not set "
                    "(write ${NAME:-default} to give a default)"
                )
            errors.append(f"{path}: mcpServers.{name}: {why}")
            continue
        servers[name] = ConfiguredServer(name, settings, source, path)
    return servers, errors


def validation_messages(prefix: str, exc: ValidationError) -> list[str]:
    """One `prefix.field: message` per problem, as users name fields in their files."""
    out = []
    for err in exc.errors():
        where = ".".join([prefix, *(str(p) for p in err["loc"])])
        out.append(f"{where}: {err['msg']}")
    return out


def expand_variables(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """`${VAR}` and `${VAR:-default}` in strings, as Claude Code expands them in `.mcp.json`.

    A variable that is unset and has no default raises KeyError(name).
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise KeyError(name)

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_variables(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_variables(v, env) for v in value]
    return value


def with_workspace_folder(settings: McpServerSettings, workspace: Path) -> McpServerSettings:
    """`${workspaceFolder}` replaced by the workspace's absolute path (the editor setting's
    values; the files' go through `expand_variables`)."""
    token, folder = "${" + WORKSPACE_VARIABLE + "}", str(workspace.absolute())

    def sub(text: str) -> str:
        return text.replace(token, folder)

    return settings.model_copy(
        update={
            "command": sub(settings.command) if settings.command is not None else None,
            "args": [sub(a) for a in settings.args],
            "env": {k: sub(v) for k, v in settings.env.items()},
        }
    )


def write_server(path: Path, name: str, settings: McpServerSettings) -> bool:
    """Add or replace one server in a `mcpServers` file, keeping every other entry and field.

    Returns True when a server of that name was replaced. Raises ValueError when the file exists
    but is not a valid `mcpServers` file (it is left as it is).
    """
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("mcpServers", {}), dict):
            raise ValueError(f'{path}: expected an object with an "mcpServers" object')
        data = loaded
    servers = data.setdefault("mcpServers", {})
    replaced = name in servers
    servers[name] = settings.model_dump(exclude_defaults=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return replaced
