"""docs/protocol.md stays true: its command table, argument names, settings and notifications
match what the server registers, validates and sends."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic.alias_generators import to_camel

from agentls.lsp import arguments
from agentls.lsp.app import create_server
from agentls.lsp.settings import LspSettings

DOC = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text(encoding="utf-8")
SERVER_SOURCES = "\n".join(
    p.read_text(encoding="utf-8")
    for p in (Path(__file__).parent.parent / "server" / "agentls" / "lsp").glob("*.py")
)

ARGUMENT_MODELS = {
    "agentls.delegate": arguments.DelegateArgs,
    "agentls.delegateParallel": arguments.DelegateParallelArgs,
    "agentls.createAgent": arguments.CreateAgentArgs,
    "agentls.cancel": arguments.CancelArgs,
    "agentls.listAgents": None,
    "agentls.budget": arguments.BudgetArgs,
    "agentls.audit": arguments.AuditArgs,
}


def documented_commands() -> dict[str, str]:
    rows = re.findall(r"^\| `(agentls\.\w+)` \| (.*?) \|", DOC, flags=re.MULTILINE)
    return dict(rows)


def test_every_registered_command_is_documented_and_nothing_else():
    registered = set(create_server().protocol.fm.commands)
    assert set(documented_commands()) == registered


def test_documented_arguments_are_exactly_what_each_command_accepts():
    for command, cell in documented_commands().items():
        model = ARGUMENT_MODELS[command]
        # Top-level argument names: the words before ':' / '?' / ',' outside nested braces.
        flat = re.sub(r"\[.*?\]|\{.*?\}", "", cell)
        named = set(re.findall(r"`?(\w+)\??", flat.replace("—", ""))) - {
            "get",
            "set",
            "reset",
            "none",
            "every",
            "run",
        }
        wanted = {to_camel(name) for name in model.model_fields} if model else set()
        if command == "agentls.createAgent":
            named.add("run")  # `run?` is an argument there, not prose
        assert named == wanted, (
            f"{command}: doc says {sorted(named)}, server takes {sorted(wanted)}"
        )


def test_documented_settings_match_the_settings_model():
    keys = set(re.findall(r"^\| `([\w.]+)` \|", DOC, flags=re.MULTILINE)) - set(
        documented_commands()
    )
    top = {k.split(".")[0] for k in keys}
    wire = {to_camel(name) for name in LspSettings.model_fields} - {"apiKey"}
    assert top == wire


def test_every_custom_notification_sent_is_documented():
    sent = set(re.findall(r'notify\(\s*"(agentls/\w+)"', SERVER_SOURCES))
    documented = set(re.findall(r"\*\*`(agentls/\w+)`\*\*", DOC))
    assert sent == documented == {"agentls/event", "agentls/output", "agentls/budget"}
