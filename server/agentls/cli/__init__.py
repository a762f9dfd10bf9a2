"""The terminal adapter: `agentls <command>`; each command lives in its own module here."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from agentls.core.state_check import StateError

# Each module defines `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
# Modules import their heavy dependencies inside `func`, so `agentls serve` starts fast.
COMMAND_MODULES = (
    "agents",
    "run",
    "parallel",
    "create",
    "budget",
    "audit",
    "report",
    "serve",
    "mcp_server",
    "doctor",
    "mcp",
    "acp",
    "db",
)


# The commands that serve another program; every other command is the terminal's own front end.
_FRONT_ENDS = {"serve": "lsp", "acp": "acp", "mcp-server": "mcp"}


class CliError(Exception):
    """A user-facing error: printed as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, reporting a bad argument in one line (as every other CLI error is)
    instead of its usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"agentls: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="agentls",
        description="Delegate code to AI agents; budgets and an audit trail included.",
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="workspace root (default: the current directory); state lives in WORKSPACE/.agentls/",
    )
    parser.add_argument(
        "--untrusted",
        action="store_true",
        help="do not use the workspace's agent definitions, MCP servers or run_command "
        "(for a folder you have not reviewed, e.g. a fresh clone)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=None,
        help="the team's PostgreSQL database for the budget and the audit trail, e.g. "
        "postgresql://alice@db.internal/agentls (default: AGENTLS_DATABASE_URL, else the files "
        "in WORKSPACE/.agentls/); keep the password in PGPASSWORD or ~/.pgpass",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"agentls.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"agentls.cli.{name}":
                continue  # a command not built yet
            raise
        module.register(sub)
    return parser


def workspace_of(args: argparse.Namespace) -> Path:
    root = args.workspace if args.workspace is not None else Path.cwd()
    root = root.resolve()
    if not root.is_dir():
        raise CliError(f"--workspace {args.workspace}: not a directory")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.database_url is not None:
        # Through the environment, so every command and every child agentls it starts use it.
        from agentls.core.stores.postgres import DATABASE_URL_ENV

        if not args.database_url.strip():
            print("agentls: error: --database-url: the URL is empty", file=sys.stderr)
            return 2
        os.environ[DATABASE_URL_ENV] = args.database_url
    from agentls.core.who import set_front_end

    # Every process enters here: recorded on each audit event its runs make (core/who.py).
    set_front_end(_FRONT_ENDS.get(args.command, "cli"))
    from agentls.cli.visible import VisibleLastResort, visible

    # A command that configures no logging (all but the servers) prints warnings this way.
    logging.lastResort = VisibleLastResort()
    try:
        return int(args.func(args) or 0)
    except (CliError, StateError) as exc:  # StateError: a broken ledger or audit trail
        # An error may quote a file's text or a server's answer: shown, never obeyed.
        print(f"agentls: error: {visible(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("agentls: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `agentls audit --json | head`: the reader left. Point stdout at devnull so the
        # interpreter's final flush does not raise again (the recipe in Python's signal docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
