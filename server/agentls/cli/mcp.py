"""`agentls mcp list | call | add`: the MCP servers agents may use, from the terminal."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from agentls.cli import CliError, workspace_of
from agentls.cli.visible import json_visible, visible
from agentls.core.bounds import MAX_SECONDS

if TYPE_CHECKING:
    from agentls.core.mcp_client.config import McpConfig

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "mcp",
        help="list, call and add the MCP servers agents may use",
        description="MCP servers come from ~/.config/agentls/mcp.json, the workspace's .mcp.json "
        "and .agentls/mcp.json (later wins by name); see docs/mcp.md.",
    )
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    mcp_sub = parser.add_subparsers(dest="mcp_command", metavar="SUBCOMMAND")

    listing = mcp_sub.add_parser("list", help="servers, where each is configured, state, tools")
    listing.add_argument("--json", action="store_true", help="print JSON on stdout")
    listing.set_defaults(func=list_servers)

    call = mcp_sub.add_parser("call", help="call one tool of a server and print its result")
    call.add_argument("server", metavar="SERVER", help="server name (see `agentls mcp list`)")
    call.add_argument("tool", metavar="TOOL", help="tool name as the server lists it")
    call.add_argument(
        "arguments", metavar="JSON", nargs="?", default="{}", help="tool arguments (JSON object)"
    )
    call.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="cancel the call after this long (default: 60)",
    )
    call.add_argument("--json", action="store_true", help="print the result as JSON")
    call.set_defaults(func=call_tool)

    add = mcp_sub.add_parser(
        "add",
        help="add a server to the workspace's .agentls/mcp.json",
        usage="agentls mcp add NAME [--env KEY=VALUE ...] -- COMMAND [ARGS ...]\n"
        "       agentls mcp add NAME --url URL [--header 'NAME: VALUE' ...]",
    )
    add.add_argument("name", metavar="NAME", help="server name: letters, digits, _ and -")
    _add_options(add)
    # Everything after NAME: more options, then `--` and the server's own command line.
    add.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    add.set_defaults(func=add_server)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a Streamable HTTP server instead of a command")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="environment variable"
    )
    parser.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'", help="HTTP header"
    )


def _split_add_arguments(args: argparse.Namespace) -> list[str]:
    """Options given after NAME join those before it; returns the command after `--`."""
    rest = list(args.rest)
    if "--" in rest:
        options, command = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
    elif rest and not rest[0].startswith("-"):
        options, command = [], rest  # argparse already took the `--` right after NAME
    else:
        options, command = rest, []
    more = argparse.ArgumentParser(prog="agentls mcp add", add_help=False, exit_on_error=False)
    _add_options(more)
    try:
        parsed, unknown = more.parse_known_args(options)
    except argparse.ArgumentError as exc:
        raise CliError(str(exc)) from None
    if unknown:
        raise CliError(
            f"{unknown[0]!r}: put -- before the server's command, "
            "e.g. agentls mcp add time -- uvx mcp-server-time"
        )
    args.url = parsed.url or args.url
    args.env = [*args.env, *parsed.env]
    args.header = [*args.header, *parsed.header]
    return command


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not 0 < number <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"expected seconds above 0 and at most {MAX_SECONDS:g}, got {value}"
        )
    return number


def _config(args: argparse.Namespace) -> McpConfig:
    from agentls.core.mcp_client.config import load_mcp_config

    # `agentls --untrusted mcp ...`: the workspace's own servers are not used, as in a run.
    config = load_mcp_config(workspace_of(args), trusted=not getattr(args, "untrusted", False))
    for error in config.errors:
        print(f"agentls: warning: {visible(error)}", file=sys.stderr)
    return config


def list_servers(args: argparse.Namespace) -> int:
    from agentls.core.mcp_client.pool import McpPool, McpServerError

    workspace = workspace_of(args)
    config = _config(args)
    pool = McpPool(workspace, config)

    async def probe(name: str) -> dict[str, Any]:
        server = config.servers[name]
        entry: dict[str, Any] = {
            "name": name,
            "source": server.source,
            "path": str(server.path) if server.path else None,
            "transport": "http" if server.settings.url else "stdio",
            "target": server.settings.describe(),
            # Servers of the same name from sources this one wins over (not started).
            "replaces": config.replaced.get(name, []),
        }
        try:
            tools = await pool.tools(name)
        except McpServerError as exc:
            return entry | {"state": "failed", "error": str(exc), "tools": []}
        described = [{"name": t.name, "description": t.description or ""} for t in tools.values()]
        return entry | {"state": "running", "error": None, "tools": described}

    async def go() -> list[dict[str, Any]]:
        try:
            return list(await asyncio.gather(*(probe(n) for n in sorted(config.servers))))
        finally:
            await pool.aclose()

    servers = asyncio.run(go())
    if args.json:
        out = {"servers": servers, "untrusted": config.untrusted, "errors": config.errors}
        print(json_visible(json.dumps(out, indent=2)))
    elif not servers and not config.untrusted:
        print(f"No MCP servers configured for {workspace} (add one: agentls mcp add NAME -- CMD)")
    # Names and command lines come from configuration files a repository may ship, tool names
    # and errors from the servers: each field shown on its line, control characters written out.
    for name in [] if args.json else config.untrusted:
        print(f"{_field(name)}  [not used: --untrusted leaves out the workspace's servers]")
    for s in [] if args.json else servers:
        print(f"{_field(s['name'])}  [{s['state']}]  {_field(s['target'])}")
        path = f" ({_field(s['path'])})" if s["path"] else ""
        print(f"  from: {_field(s['source'])}{path}")
        for origin in s["replaces"]:
            print(f"  replaces the server of that name from {_field(origin)}")
        if s["error"]:
            print("  error: " + visible(s["error"]).replace("\n", "\n    "))
        else:
            names = ", ".join(_field(t["name"]) for t in s["tools"]) or "none"
            print(f"  tools ({len(s['tools'])}): {names}")
    return 1 if any(s["state"] == "failed" for s in servers) or config.errors else 0


def call_tool(args: argparse.Namespace) -> int:
    from agentls.core.mcp_client.pool import DEFAULT_CALL_TIMEOUT, McpPool, McpServerError

    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"JSON {args.arguments[:60]!r}: not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}); e.g. '{{\"a\": 1}}'"
        ) from None
    if not isinstance(arguments, dict):
        raise CliError(f"JSON {args.arguments[:60]!r}: tool arguments must be a JSON object")
    workspace = workspace_of(args)
    config = _config(args)
    if args.server in config.untrusted:
        raise CliError(
            f"SERVER {args.server!r}: comes from the workspace's configuration, "
            "which --untrusted leaves out"
        )
    if args.server not in config.servers:
        known = ", ".join(sorted(config.servers)) or "none"
        raise CliError(f"SERVER {args.server!r}: no such MCP server (configured: {known})")
    pool = McpPool(workspace, config, call_timeout=args.timeout or DEFAULT_CALL_TIMEOUT)

    async def go() -> tuple[str, bool]:
        try:
            tools = await pool.tools(args.server)
            if args.tool not in tools:
                raise CliError(
                    f"TOOL {args.tool!r}: server {args.server!r} has no such tool "
                    f"(it has: {', '.join(sorted(tools)) or 'none'})"
                )
            result = await pool.call_tool(args.server, args.tool, arguments)
            return result.content, result.is_error
        except McpServerError as exc:
            raise CliError(str(exc)) from None
        finally:
            await pool.aclose()

    content, is_error = asyncio.run(go())
    if args.json:
        print(json_visible(json.dumps({"is_error": is_error, "content": content}, indent=2)))
    else:
        print(visible(content))
    return 1 if is_error else 0


def add_server(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from agentls.core.mcp_client.config import (
        CHILD_SERVER,
        McpServerSettings,
        validation_messages,
        workspace_config_file,
        write_server,
    )

    if not _NAME.match(args.name):
        raise CliError(f"NAME {args.name!r}: use 1-48 letters, digits, '_' or '-'")
    if args.name == CHILD_SERVER:
        raise CliError(
            f"NAME {args.name!r} is reserved: in an agent's `mcp:` it names the child agentls an "
            "orchestrating run starts itself (docs/mcp.md), so a server of that name would never "
            "be used; choose another name, e.g. agentls-self"
        )
    command = _split_add_arguments(args)
    if args.url and command:
        raise CliError("give either --url URL or -- COMMAND ARGS, not both")
    if not args.url and not command:
        raise CliError("COMMAND: missing; e.g. agentls mcp add time -- uvx mcp-server-time")
    env = dict(_pair(item, "=", "--env", "KEY=VALUE") for item in args.env)
    headers = dict(_pair(item, ":", "--header", "'NAME: VALUE'") for item in args.header)
    if args.url and env:
        raise CliError("--env applies to a command server, not a --url one")
    if command and headers:
        raise CliError("--header applies to a --url server, not a command one")
    try:
        settings = (
            McpServerSettings(url=args.url, headers=headers)
            if args.url
            else McpServerSettings(command=command[0], args=command[1:], env=env)
        )
    except ValidationError as exc:
        raise CliError("; ".join(validation_messages(args.name, exc))) from None
    path = workspace_config_file(workspace_of(args))
    try:
        replaced = write_server(path, args.name, settings)
    except ValueError as exc:
        raise CliError(f"{exc}; fix or remove the file first") from None
    verb = "Replaced" if replaced else "Added"
    print(f"{verb} MCP server {args.name!r} ({_field(settings.describe())}) in {_field(path)}")
    return 0


def _field(text: object) -> str:
    return visible(str(text), one_line=True)


def _pair(item: str, sep: str, option: str, form: str) -> tuple[str, str]:
    key, found, value = item.partition(sep)
    if not found or not key.strip():
        raise CliError(f"{option} {item!r}: expected {form}")
    return key.strip(), value.strip() if sep == ":" else value
