"""A team database named only in the user's settings file is the one every command reads.

`agentls run` charges the team's ledger when `databaseUrl` is in ~/.config/agentls/settings.json;
`agentls budget`, `agentls audit` and `agentls report` must then show that same ledger and trail,
never the laptop's own files (which would hold nothing and look like a spend of zero).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.rig.postgres import SUPERUSER_PASSWORD, PostgresCluster, database_name
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main

MODEL = "gpt-4o-mini"


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(models=(MODEL,)) as s:
        s.responder = lambda body: Text("It doubles x.", prompt_tokens=80, completion_tokens=40)
        yield s


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and standard output (what a user pipes); standard error is shown on failure."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    assert code == 0, out.err
    return code, out.out


def test_budget_audit_and_report_read_the_team_database_of_the_settings_file(
    tmp_path: Path,
    server: ScriptedOpenAI,
    team_db: str,
    postgres_cluster: PostgresCluster,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AGENTLS_DATABASE_URL", raising=False)
    # The password in PGPASSWORD: a settings file may not hold one.
    monkeypatch.setenv("PGPASSWORD", SUPERUSER_PASSWORD)
    url = f"postgresql://postgres@127.0.0.1:{postgres_cluster.port}/{database_name(team_db)}"
    settings = Path.home() / ".config" / "agentls" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"databaseUrl": url, "model": MODEL, "baseUrl": server.url}))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-t")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "two.py").write_text("def twice(x):\n    return 2 * x\n")

    code, out = cli(capsys, "--workspace", str(ws), "budget", "set", "5000")
    assert "budget of the team's total set to 5,000 tokens" in out, out
    code, out = cli(capsys, "--workspace", str(ws), "run", "explain", "--file", "two.py")
    assert code == 0, out

    code, out = cli(capsys, "--workspace", str(ws), "budget")
    assert code == 0, out
    assert "120" in out and "5,000" in out.replace("5000", "5,000"), out
    code, out = cli(capsys, "--workspace", str(ws), "audit", "--json")
    assert code == 0, out
    assert '"model_call"' in out, out
    code, out = cli(capsys, "--workspace", str(ws), "report", "--json")
    assert code == 0, out
    assert json.loads(out)["total"]["calls"] == 1, out
    # Nothing went to the workspace's own files.

    assert not (ws / ".agentls" / "ledger.db").exists()

    assert not (ws / ".agentls" / "audit.db").exists()
