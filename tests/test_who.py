"""Who ran a run, on what, through which front end: every audit event records the user
(`AGENTLS_USER`, else user@host), the workspace (its git remote without credentials, else its
folder name) and the front end (cli, lsp, acp, mcp); `agentls audit --user/--workspace` filter
on them."""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.events import EventKind, RunEvent
from agentls.core.who import git_remote, without_credentials

REMOTE_WITH_TOKEN = "https://alice:ghp_s3cretT0ken@github.com/acme/shop.git"
CONFIG = f"""\
[core]
\trepositoryformatversion = 0
[remote "upstream"]
\turl = https://github.com/other/shop.git
[remote "origin"]
\turl = {REMOTE_WITH_TOKEN}
\tfetch = +refs/heads/*:refs/remotes/origin/*
"""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("COLUMNS", "200")
    with ScriptedOpenAI() as s:
        s.responder = lambda body: Text("fine")
        yield s


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clone of acme/shop whose remote URL carries a token (as some CI checkouts do)."""
    root = tmp_path / "shop"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text(CONFIG, encoding="utf-8")
    (root / "a.py").write_text("x = 1\n", encoding="utf-8")
    return root


def run_explain(server: ScriptedOpenAI, workspace: Path) -> None:
    argv = [
        "--workspace", str(workspace), "run", "explain", "--file", str(workspace / "a.py"),
        "--base-url", server.url, "--model", "scripted-model",
    ]  # fmt: skip
    assert main(argv) == 0


def audit_json(workspace: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[Any]:
    capsys.readouterr()
    assert main(["--workspace", str(workspace), "audit", "--json", *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_every_event_says_who_ran_it_on_which_repository_from_the_terminal(
    server: ScriptedOpenAI,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    backend: str | None,
) -> None:
    monkeypatch.setenv("AGENTLS_USER", "alice")
    run_explain(server, repo)

    events = audit_json(repo, capsys)

    assert {e["kind"] for e in events} >= {"started", "model_call", "finished"}
    assert {(e["user"], e["workspace"], e["front_end"]) for e in events} == {
        ("alice", "https://github.com/acme/shop.git", "cli")
    }
    with AuditStore.for_workspace(repo) as audit:
        assert "ghp_s3cretT0ken" not in json.dumps([e.model_dump() for e in audit.query()])
    if backend is not None:  # a team database's indexed columns say the same
        import psycopg

        with psycopg.connect(backend) as conn:
            rows = conn.execute(
                'SELECT DISTINCT "user", workspace, front_end FROM agentls.events'
            ).fetchall()
        assert rows == [("alice", "https://github.com/acme/shop.git", "cli")]


def test_without_a_git_remote_the_workspace_is_the_folder_and_the_user_is_user_at_host(
    server: ScriptedOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "a.py").write_text("x = 1\n", encoding="utf-8")
    run_explain(server, folder)

    events = audit_json(folder, capsys)

    assert {e["workspace"] for e in events} == {"scratch"}
    assert {e["user"] for e in events} == {f"{getpass.getuser()}@{socket.gethostname()}"}


def test_a_worktree_has_its_repository_s_remote(repo: Path, tmp_path: Path) -> None:
    """`.git` is a file naming the worktree's git folder, which names the common one."""
    linked = repo / ".git" / "worktrees" / "feature"
    linked.mkdir(parents=True)
    (linked / "commondir").write_text("../..\n", encoding="utf-8")
    tree = tmp_path / "feature"
    tree.mkdir()
    (tree / ".git").write_text(f"gitdir: {linked}\n", encoding="utf-8")

    assert git_remote(tree / "src") == "https://github.com/acme/shop.git"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://x-access-token:ghs_abc@github.com/acme/shop", "https://github.com/acme/shop"),
        ("https://ghp_abc@github.com:443/acme/shop.git", "https://github.com:443/acme/shop.git"),
        ("https://host/acme/shop.git?private_token=abc", "https://host/acme/shop.git"),
        ("ssh://git@host:2222/acme/shop.git", "ssh://host:2222/acme/shop.git"),
        ("git@github.com:acme/shop.git", "git@github.com:acme/shop.git"),
        ("/srv/git/shop.git", "/srv/git/shop.git"),
    ],
)
def test_credentials_never_leave_a_remote_url(url: str, shown: str) -> None:
    assert without_credentials(url) == shown


def _event(run: str, kind: EventKind, user: str, workspace: str, tokens: int = 0) -> RunEvent:
    data: dict[str, Any] = {}
    if kind is EventKind.MODEL_CALL:
        data = {"call_usage": {"input_tokens": tokens, "output_tokens": 0}}
    return RunEvent(
        run_id=run,
        agent="review",
        goal="g",
        kind=kind,
        data=data,
        user=user,
        workspace=workspace,
        front_end="cli",
    )


@pytest.fixture
def team_trail(tmp_path: Path, backend: str | None) -> Path:
    """One trail holding two users' runs on two repositories (the workspace's file, or a team
    database: the filters run in either store)."""
    with AuditStore.for_workspace(tmp_path) as audit:
        for run, user, workspace, tokens in [
            ("run-alice-shop", "alice@laptop", "git@github.com:acme/shop.git", 100),
            ("run-bob-shop", "bob@ci-7", "https://github.com/acme/shop", 20),
            ("run-alice-api", "alice@laptop", "https://github.com/acme/api.git", 3),
        ]:
            for kind in (EventKind.STARTED, EventKind.MODEL_CALL, EventKind.FINISHED):
                audit.append(_event(run, kind, user, workspace, tokens))
    return tmp_path


def test_audit_user_filter_keeps_one_user_s_events(
    team_trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    by_name = audit_json(team_trail, capsys, "--user", "alice")
    by_host = audit_json(team_trail, capsys, "--user", "bob@ci-7")

    assert {e["run_id"] for e in by_name} == {"run-alice-shop", "run-alice-api"}
    assert {e["run_id"] for e in by_host} == {"run-bob-shop"}
    assert audit_json(team_trail, capsys, "--user", "ali") == []


def test_audit_workspace_filter_matches_the_repository_however_its_url_is_written(
    team_trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = audit_json(team_trail, capsys, "--workspace", "acme/shop")
    both = audit_json(team_trail, capsys, "--workspace", "acme/shop", "--user", "alice")

    assert {e["run_id"] for e in shop} == {"run-alice-shop", "run-bob-shop"}
    assert {e["run_id"] for e in both} == {"run-alice-shop"}


def test_audit_table_totals_count_only_the_filtered_user(
    team_trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--workspace", str(team_trail), "audit", "--user", "bob"]) == 0

    out = capsys.readouterr().out
    assert "run-bob-" in out and "run-alic" not in out
    totals = out[out.index("tokens per agent") :]
    assert "20" in totals and "103" not in totals and "123" not in totals


async def test_runs_through_the_mcp_server_are_recorded_as_mcp(
    server: ScriptedOpenAI, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentls", "--workspace", str(repo), "mcp-server"],
        env={
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": server.url,
            "AGENTLS_MODEL": "scripted-model",
            "AGENTLS_USER": "ci-bot",
            **{k: os.environ[k] for k in ("PYTHONPATH", "HOME") if k in os.environ},
        },
    )
    async with Client(params) as client:
        await client.call_tool("delegate", {"agent": "explain", "goal": "x", "file": "a.py"})

    events = audit_json(repo, capsys)
    assert {(e["user"], e["front_end"]) for e in events} == {("ci-bot", "mcp")}
