"""One invalid setting costs only that key: its siblings apply, the warning names its exact path,
and it keeps the value in force before, so a typo never lifts a budget limit."""

from __future__ import annotations

from agentls.lsp.settings import LspSettings, parse_settings


def test_an_invalid_nested_key_drops_only_that_key():
    settings, problems = parse_settings(
        {"budget": {"total": 1000, "perRun": 0, "perAgent": {"review": 50}}}
    )

    assert settings.budget.total == 1000
    assert settings.budget.per_agent == {"review": 50}
    assert settings.budget.per_run is None
    assert len(problems) == 1
    assert problems[0].startswith("setting agentls.budget.perRun: ")


def test_an_invalid_key_keeps_the_value_in_force():
    before, _ = parse_settings({"budget": {"total": 1000, "perRun": 500}})

    after, problems = parse_settings({"budget": {"total": 2000, "perRun": -3}}, previous=before)

    assert after.budget.total == 2000
    assert after.budget.per_run == 500
    assert problems == [
        "setting agentls.budget.perRun: Input should be greater than 0; keeping the previous value"
    ]


def test_a_budget_that_is_not_an_object_keeps_the_budget_in_force():
    before, _ = parse_settings({"budget": {"total": 1000}})

    after, problems = parse_settings({"budget": "lots"}, previous=before)

    assert after.budget.total == 1000
    assert [p.split(":")[0] for p in problems] == ["setting agentls.budget"]


def test_one_bad_agent_limit_keeps_the_other_agents_limits():
    settings, problems = parse_settings(
        {"budget": {"perAgent": {"review": 50, "explain": -1, "document": "many"}}}
    )

    assert settings.budget.per_agent == {"review": 50}
    assert sorted(p.split(":")[0] for p in problems) == [
        "setting agentls.budget.perAgent.document",
        "setting agentls.budget.perAgent.explain",
    ]


def test_an_mcp_server_without_a_command_drops_only_that_server():
    settings, problems = parse_settings(
        {"mcpServers": {"good": {"command": "node"}, "bad": {"args": ["x"]}}, "maxParallel": 3}
    )

    assert list(settings.mcp_servers) == ["good"]
    assert settings.max_parallel == 3
    # The server entry as a whole is invalid (it needs `command` or `url`): it is what is dropped.
    assert [p.split(":")[0] for p in problems] == ["setting agentls.mcpServers.bad"]


def test_an_invalid_list_item_drops_only_that_item():
    settings, problems = parse_settings({"agentFolders": ["a", 3, "b", None]})

    assert settings.agent_folders == ["a", "b"]
    assert len(problems) == 2


def test_valid_settings_report_nothing():
    settings, problems = parse_settings({"budget": {"total": 5}, "audit": {"retentionDays": 30}})

    assert problems == []
    assert settings.audit.retention_days == 30
    assert settings == LspSettings.model_validate(
        {"budget": {"total": 5}, "audit": {"retentionDays": 30}}
    )


def test_a_secret_name_in_pass_env_drops_only_that_name():
    settings, problems = parse_settings(
        {"runCommand": {"enabled": True, "passEnv": ["MY_VAR", "GITHUB_TOKEN", "JAVA_HOME"]}}
    )
    assert settings.run_command.pass_env == ["MY_VAR", "JAVA_HOME"]
    (problem,) = problems
    assert "agentls.runCommand.passEnv.1" in problem and "'GITHUB_TOKEN'" in problem
    assert "leaving out that entry" in problem


def test_a_minimum_answer_above_the_maximum_is_reported_and_the_maximum_wins():
    settings, problems = parse_settings(
        {"maxOutputTokens": 1024, "budget": {"minOutputTokens": 1990}}
    )
    assert settings.budget.min_output_tokens == 1024
    (problem,) = problems
    assert "agentls.budget.minOutputTokens" in problem and "agentls.maxOutputTokens" in problem


def test_the_default_minimum_follows_a_small_maximum_silently():
    settings, problems = parse_settings({"maxOutputTokens": 16})
    assert (settings.budget.min_output_tokens, problems) == (16, [])


def test_a_limit_beyond_any_ledger_is_refused_and_the_limit_in_force_stays():
    # 1e30 would overflow the ledger's 64-bit integers (and mean "unlimited" by accident).
    settings, problems = parse_settings(
        {"budget": {"total": 10**30, "perAgent": {"review": 10**30, "explain": 500}}}
    )
    assert settings.budget.total is None
    assert settings.budget.per_agent == {"explain": 500}
    assert any("agentls.budget.total" in p for p in problems)
    assert any("agentls.budget.perAgent.review" in p for p in problems)


def _bounds(schema: dict, root: dict) -> dict:
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    variants = schema.get("anyOf", [schema])
    words = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    found = {w: v[w] for v in variants for w in words if w in v}
    if "properties" in schema:
        found["properties"] = {k: _bounds(v, root) for k, v in schema["properties"].items()}
    if isinstance(schema.get("additionalProperties"), dict):
        found["values"] = _bounds(schema["additionalProperties"], root)
    return found


def test_the_engine_and_the_settings_users_write_bound_every_shared_setting_alike():
    # Written twice once, they drifted (retentionDays had no upper bound in one).
    from pydantic.alias_generators import to_camel

    from agentls.core.engine_settings import EngineSettings

    wire_schema = LspSettings.model_json_schema(by_alias=True)
    engine_schema = EngineSettings.model_json_schema()
    wire = _bounds(wire_schema, wire_schema)["properties"]
    engine = _bounds(engine_schema, engine_schema)["properties"]
    shared = [name for name in engine if to_camel(name) in wire]
    assert {"budget", "max_parallel", "mcp_call_timeout", "audit"} <= set(shared)
    for name in shared:
        mine, theirs = wire[to_camel(name)], engine[name]
        if "properties" in mine and "properties" in theirs:
            mine = {to_camel(k): v for k, v in mine["properties"].items()}
            theirs = {to_camel(k): v for k, v in theirs["properties"].items()}
            theirs = {k: v for k, v in theirs.items() if k in mine}
        assert mine == theirs, name
