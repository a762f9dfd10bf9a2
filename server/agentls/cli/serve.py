"""`agentls serve`: the language server over stdio (what editors start)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the language server over stdio (for editors)")
    parser.add_argument("--stdio", action="store_true", help="accepted for editors that pass it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentls.lsp.collector import loading

    with loading():  # the server's own imports, before it answers anything
        from agentls.lsp.app import main
    return main()
