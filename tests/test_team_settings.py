"""The `databaseUrl` setting: the editor's and the user's own settings name the team database; a
password in it is refused (settings files get committed), and an untrusted workspace's own value
is ignored, since libpq would send the user's password wherever it points."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.settings import parse_settings
from agentls.core.settings_scope import restrict_untrusted

TEAM = "postgresql://alice@db.internal:5432/agentls"


def test_the_setting_names_the_team_database_for_the_engine() -> None:
    settings, problems = parse_settings({"databaseUrl": TEAM})

    assert problems == []
    assert settings.engine(trusted=True).database_url == TEAM


def test_a_password_in_the_setting_is_refused_without_showing_it() -> None:
    settings, problems = parse_settings(
        {"databaseUrl": "postgresql://alice:hunter2-secret@db.internal/agentls"}
    )

    assert settings.database_url is None
    [problem] = problems
    assert "databaseUrl" in problem and "PGPASSWORD or ~/.pgpass" in problem
    assert "hunter2-secret" not in problem


def test_an_untrusted_workspace_cannot_point_agentls_at_its_own_database() -> None:
    mine, _ = parse_settings({"databaseUrl": TEAM})
    merged, _ = parse_settings({"databaseUrl": TEAM}, {"databaseUrl": "postgresql://x@evil/db"})

    result = restrict_untrusted(merged, mine)

    assert result.settings.database_url == TEAM
    assert any(item.startswith("databaseUrl") for item in result.ignored)


def test_without_a_database_the_workspace_files_are_used(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path, EngineSettings())
    try:
        assert not runtime.budgeter.shared and runtime.audit is not None
        assert runtime.budgeter.path == tmp_path / ".agentls" / "ledger.db"
    finally:
        runtime.budgeter.close()
        runtime.audit.close()


def test_the_environment_wins_over_the_setting(
    tmp_path: Path, team_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTLS_DATABASE_URL", team_db)
    runtime = build_runtime(tmp_path, EngineSettings(database_url="postgresql://x@127.0.0.1:1/no"))
    try:
        assert runtime.budgeter.shared and runtime.audit is not None and runtime.audit.shared
        assert not (tmp_path / ".agentls" / "ledger.db").exists()
    finally:
        runtime.budgeter.close()
        runtime.audit.close()
