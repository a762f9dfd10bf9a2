"""Broken workspace state: every command says which file is wrong and what to do, never a
traceback; `agentls doctor` finds it and `agentls doctor --repair` moves it aside, keeping it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.rig.postgres import SUPERUSER_PASSWORD, PostgresCluster, database_name, free_port

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.events import EventKind, RunEvent, RunStatus, Usage
from agentls.core.state_check import StateError, check_database
from agentls.core.stores.pg_ledger import PgLedgerStore
from agentls.core.stores.postgres import MEMBER_ROLE

CaptureFixture = pytest.CaptureFixture[str]
REPAIR = "agentls doctor --repair"


def cli(ws: Path, *argv: str) -> int:
    return main(["--workspace", str(ws), *argv])


def state(ws: Path) -> Path:
    return ws / ".agentls"


def with_history(ws: Path, runs: int = 300) -> None:
    """A workspace whose ledger and audit trail hold real history (several pages each)."""
    with TokenBudgeter.for_workspace(ws) as budget:
        budget.set_limit(1_000_000)
        for n in range(runs):
            r = budget.reserve(run_id=f"r{n}", agent="reviewer", prompt_tokens=10, max_tokens=5)
            budget.commit(r, Usage(input_tokens=10, output_tokens=5))
    with AuditStore.for_workspace(ws) as audit:
        for n in range(runs):
            audit.append(
                RunEvent(
                    run_id=f"r{n}",
                    agent="reviewer",
                    goal="review the parser " * 20,
                    kind=EventKind.FINISHED,
                    status=RunStatus.FINISHED,
                )
            )


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def one_clear_line(err: str, path: Path, *hints: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert str(path) in lines[0]
    for hint in hints:
        assert hint in lines[0]


def test_garbage_audit_db_names_the_file_and_the_repair(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    state(tmp_path).mkdir()
    (state(tmp_path) / "audit.db").write_bytes(os.urandom(4096))
    assert cli(tmp_path, "audit") == 2
    one_clear_line(capsys.readouterr().err, state(tmp_path) / "audit.db", "not an SQLite", REPAIR)


def test_half_truncated_ledger_names_the_file_and_the_repair(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    with_history(tmp_path)
    truncate_half(state(tmp_path) / "ledger.db")
    assert cli(tmp_path, "budget") == 2
    one_clear_line(capsys.readouterr().err, state(tmp_path) / "ledger.db", "cut short", REPAIR)


def test_half_truncated_audit_db_names_the_file(tmp_path: Path, capsys: CaptureFixture) -> None:
    with_history(tmp_path)
    truncate_half(state(tmp_path) / "audit.db")
    assert cli(tmp_path, "audit") == 2
    one_clear_line(capsys.readouterr().err, state(tmp_path) / "audit.db", REPAIR)


def test_audit_db_that_is_a_directory_names_it(tmp_path: Path, capsys: CaptureFixture) -> None:
    (state(tmp_path) / "audit.db").mkdir(parents=True)
    assert cli(tmp_path, "audit") == 2
    one_clear_line(capsys.readouterr().err, state(tmp_path) / "audit.db", "is a directory", REPAIR)


def test_state_folder_that_is_a_file_says_to_move_it(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    state(tmp_path).write_text("not a folder")
    assert cli(tmp_path, "budget") == 2
    one_clear_line(capsys.readouterr().err, state(tmp_path), "is a file", "move the file aside")


def test_run_with_broken_state_fails_before_calling_any_model(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    state(tmp_path).mkdir()
    (state(tmp_path) / "ledger.db").write_bytes(b"\x00" * 100)
    (tmp_path / "app.py").write_text("print('hi')\n")
    # No model is configured: the state check must come first and be the error shown.
    assert cli(tmp_path, "run", "review", "--file", str(tmp_path / "app.py")) == 2
    one_clear_line(capsys.readouterr().err, state(tmp_path) / "ledger.db", REPAIR)


def test_zero_length_audit_db_is_reported_not_silently_started_over(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    with_history(tmp_path)
    (state(tmp_path) / "audit.db").write_bytes(b"")
    assert cli(tmp_path, "audit") == 2
    one_clear_line(capsys.readouterr().err, state(tmp_path) / "audit.db", "0 bytes", REPAIR)
    assert (state(tmp_path) / "audit.db").stat().st_size == 0  # nothing was written over it


def test_a_new_database_is_never_left_empty(tmp_path: Path) -> None:
    with AuditStore.for_workspace(tmp_path):
        path = state(tmp_path) / "audit.db"
        assert path.stat().st_size > 0
    check_database(path)
    assert sorted(p.name for p in state(tmp_path).iterdir() if ".new-" in p.name) == []


def test_doctor_finds_nothing_wrong_in_a_healthy_workspace(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    with_history(tmp_path, runs=3)
    assert cli(tmp_path, "doctor") == 0
    out = capsys.readouterr().out
    assert "ledger.db: ok" in out and "audit.db: ok" in out


def test_doctor_reports_each_broken_file_and_changes_nothing(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    with_history(tmp_path)
    truncate_half(state(tmp_path) / "audit.db")
    before = (state(tmp_path) / "audit.db").read_bytes()
    assert cli(tmp_path, "doctor") == 1
    out = capsys.readouterr().out
    assert f"BAD {state(tmp_path) / 'audit.db'}" in out
    assert f"ok  {state(tmp_path) / 'ledger.db'}" in out
    assert (state(tmp_path) / "audit.db").read_bytes() == before


def test_doctor_finds_damage_inside_a_database_with_a_sound_header(tmp_path: Path) -> None:
    with_history(tmp_path)
    path = state(tmp_path) / "audit.db"
    data = bytearray(path.read_bytes())
    data[8192:12288] = os.urandom(4096)  # pages in the middle, header and size intact
    path.write_bytes(bytes(data))
    assert cli(tmp_path, "doctor") == 1


@pytest.mark.parametrize(("name", "command"), [("audit.db", "audit"), ("ledger.db", "budget")])
def test_damage_past_the_header_names_the_file_when_it_is_read(
    tmp_path: Path, capsys: CaptureFixture, name: str, command: str
) -> None:
    with_history(tmp_path)
    path = state(tmp_path) / name
    data = bytearray(path.read_bytes())
    data[4096:-4096] = os.urandom(len(data) - 8192)  # every page but the first and last
    path.write_bytes(bytes(data))
    assert cli(tmp_path, command) == 2
    one_clear_line(capsys.readouterr().err, path, "is damaged", REPAIR)


def test_repair_keeps_the_bad_file_and_starts_a_new_one(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    with_history(tmp_path)
    truncate_half(state(tmp_path) / "ledger.db")
    damaged = (state(tmp_path) / "ledger.db").read_bytes()
    assert cli(tmp_path, "doctor", "--repair") == 0
    out = capsys.readouterr().out
    kept = [p for p in state(tmp_path).iterdir() if p.name.startswith("ledger.db.corrupt-")]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    assert str(kept[0]) in out
    assert cli(tmp_path, "budget", "--json") == 0
    # The audit trail was sound and is untouched: its history is still there.
    with AuditStore.for_workspace(tmp_path) as audit:
        assert len(audit.runs()) == 300


def test_repair_of_a_state_folder_that_is_a_file_keeps_the_file(tmp_path: Path) -> None:
    state(tmp_path).write_text("notes someone saved here")
    assert cli(tmp_path, "doctor", "--repair") == 0
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(".agentls.corrupt-")]
    assert len(kept) == 1 and kept[0].read_text() == "notes someone saved here"
    assert (state(tmp_path) / "audit.db").is_file() and (state(tmp_path) / "ledger.db").is_file()


def test_repair_of_a_zero_length_audit_db_keeps_it_aside(tmp_path: Path) -> None:
    with_history(tmp_path, runs=3)
    (state(tmp_path) / "audit.db").write_bytes(b"")
    assert cli(tmp_path, "doctor", "--repair") == 0
    kept = [p for p in state(tmp_path).iterdir() if p.name.startswith("audit.db.corrupt-")]
    assert len(kept) == 1 and kept[0].stat().st_size == 0
    with AuditStore.for_workspace(tmp_path) as audit:
        assert audit.query() == []


def test_state_error_says_what_to_do_when_pickled(tmp_path: Path) -> None:
    """Errors cross process boundaries (parallel children): the message survives."""
    import pickle

    error = StateError(tmp_path / "audit.db", "is damaged")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and REPAIR in str(again)


# A child that creates the ledger and is killed (SIGKILL, no cleanup) at a point of the creation.
KILLED_WHILE_CREATING = """
import os, signal, sys
from pathlib import Path
from agentls.core import sqlite
from agentls.core.budget import TokenBudgeter

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[2] == "before-link":
    os.link = die
else:
    create_schema = sqlite._create_schema
    def schema_then_die(conn, schema):
        create_schema(conn, schema)
        die()
    sqlite._create_schema = schema_then_die
TokenBudgeter.for_workspace(Path(sys.argv[1]))
"""


def killed_while_creating_the_ledger(ws: Path, when: str) -> list[Path]:
    """The temporary files the killed process left in the state folder."""
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_CREATING, str(ws), when], capture_output=True
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    return sorted(p for p in state(ws).iterdir() if p.name.startswith(".ledger.db.new-"))


@pytest.mark.parametrize("when", ["before-link", "mid-schema"])
def test_doctor_reports_the_temporary_database_of_a_killed_process(
    tmp_path: Path, capsys: CaptureFixture, when: str
) -> None:
    left = killed_while_creating_the_ledger(tmp_path, when)
    assert left

    assert cli(tmp_path, "doctor") == 1

    out = capsys.readouterr().out
    for path in left:
        assert f"BAD {path}: is a temporary database left by process" in out
    assert all(path.exists() for path in left)  # doctor alone changes nothing


@pytest.mark.parametrize("when", ["before-link", "mid-schema"])
def test_repair_removes_the_temporary_database_of_a_killed_process(
    tmp_path: Path, capsys: CaptureFixture, when: str
) -> None:
    left = killed_while_creating_the_ledger(tmp_path, when)

    assert cli(tmp_path, "doctor", "--repair") == 0

    out = capsys.readouterr().out
    for path in left:
        assert f"removed {path}" in out
        assert not path.exists()
    assert [p.name for p in state(tmp_path).iterdir() if ".new-" in p.name] == []
    assert (state(tmp_path) / "ledger.db").is_file()


def test_repair_leaves_files_that_only_look_like_temporary_databases(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    folder = state(tmp_path)
    folder.mkdir()
    lookalikes = [
        ".ledger.db.new-notes",
        "ledger.db.new-123-abcdef12",
        ".ledger.db.new-123-ABCDEF12",
        ".notes.db.new-123-abcdef12",
        ".audit.db.new-123-abcdef12.bak",
    ]
    for name in lookalikes:
        (folder / name).write_text("mine")
    (folder / ".audit.db.new-124-abcdef12").mkdir()  # a folder is never one of ours

    assert cli(tmp_path, "doctor", "--repair") == 0
    assert cli(tmp_path, "doctor") == 0

    assert "temporary" not in capsys.readouterr().out
    assert all((folder / name).read_text() == "mine" for name in lookalikes)
    assert (folder / ".audit.db.new-124-abcdef12").is_dir()


def test_repair_leaves_a_database_that_a_live_process_is_creating(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    folder = state(tmp_path)
    folder.mkdir()
    creating = folder / f".audit.db.new-{os.getpid()}-0123abcd"
    creating.write_bytes(b"SQLite format 3\x00")

    assert cli(tmp_path, "doctor", "--repair") == 0

    assert creating.exists()
    assert f"ok  {creating}: is a database that process {os.getpid()} is creating now" in (
        capsys.readouterr().out
    )


# --- the team database (docs/team.md): `agentls doctor` checks it when one is configured ------


def doctor(ws: Path, capsys: CaptureFixture, *argv: str, repair: bool = False) -> tuple[int, str]:
    capsys.readouterr()
    code = cli(ws, *argv, "doctor", *(["--repair"] if repair else []))
    return code, capsys.readouterr().out


def test_doctor_checks_a_healthy_team_database_and_the_users_role(
    tmp_path: Path,
    capsys: CaptureFixture,
    postgres_cluster: PostgresCluster,
    team_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out = doctor(tmp_path, capsys, "--database-url", team_db)
    assert code == 0, out
    where = f"the team database postgresql://postgres@127.0.0.1:{postgres_cluster.port}/"
    assert f"ok  {where}" in out and "answers (PostgreSQL 15" in out
    assert "holds agentls schema version 2, the version of this agentls" in out
    assert "user 'postgres' is an admin of the team database" in out
    assert "no calls' usage wait for the team database" in out
    assert "no audit events wait for the team database" in out
    assert SUPERUSER_PASSWORD not in out

    # A member, named by the user's settings file (the password in PGPASSWORD, never printed).
    postgres_cluster.login_role("gina", "gina-pw", MEMBER_ROLE)
    monkeypatch.setenv("PGPASSWORD", "gina-pw")
    monkeypatch.delenv("AGENTLS_DATABASE_URL")  # set by --database-url above
    settings = Path.home() / ".config" / "agentls" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    url = postgres_cluster.url(database_name(team_db), "gina")
    settings.write_text(json.dumps({"databaseUrl": url}))
    code, out = doctor(tmp_path, capsys)
    assert code == 0, out
    assert "user 'gina' is a member of the team database" in out
    assert "limits and pruning are an admin's" in out and "gina-pw" not in out


def test_doctor_says_a_user_without_a_role_needs_one(
    tmp_path: Path,
    capsys: CaptureFixture,
    postgres_cluster: PostgresCluster,
    team_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_cluster.login_role("hal", "hal-pw")
    monkeypatch.setenv("PGPASSWORD", "hal-pw")
    url = postgres_cluster.url(database_name(team_db), "hal")
    code, out = doctor(tmp_path, capsys, "--database-url", url)
    assert code == 1
    assert "BAD user 'hal' is neither agentls_member nor agentls_admin" in out
    assert "`agentls --database-url URL db init --member hal`" in out


def test_doctor_says_to_run_db_init_on_a_database_without_the_schema(
    tmp_path: Path, capsys: CaptureFixture, postgres_cluster: PostgresCluster
) -> None:
    url = postgres_cluster.new_database("bare")
    code, out = doctor(tmp_path, capsys, "--database-url", url)
    assert code == 1
    assert "BAD the team database postgresql://postgres@127.0.0.1:" in out
    assert (
        "has no agentls schema; an admin creates it with `agentls --database-url URL db init`"
        in out
    )
    assert SUPERUSER_PASSWORD not in out


def test_doctor_says_a_wrong_password_was_refused_without_printing_it(
    tmp_path: Path,
    capsys: CaptureFixture,
    postgres_cluster: PostgresCluster,
    team_db: str,
) -> None:
    postgres_cluster.login_role("ivy", "right-pw", MEMBER_ROLE)
    url = postgres_cluster.url(database_name(team_db), "ivy", "wrong-pw")
    code, out = doctor(tmp_path, capsys, "--database-url", url)
    assert code == 1
    assert "BAD the team database postgresql://ivy@127.0.0.1:" in out
    assert "refused the login of user 'ivy'" in out and "PGPASSWORD or ~/.pgpass" in out
    assert "wrong-pw" not in out and "right-pw" not in out


def test_doctor_says_an_unreachable_team_database_is_unreachable(
    tmp_path: Path, capsys: CaptureFixture
) -> None:
    url = f"postgresql://jo:jo-secret@127.0.0.1:{free_port()}/agentls"
    code, out = doctor(tmp_path, capsys, "--database-url", url)
    assert code == 1
    assert "BAD the team database postgresql://jo@127.0.0.1:" in out
    assert "is unreachable (Connection refused)" in out and "jo-secret" not in out


def test_doctor_reports_journals_waiting_for_the_team_database_and_repair_applies_them(
    tmp_path: Path, capsys: CaptureFixture, team_db: str
) -> None:
    # What a call that ended while the database was away leaves: its usage in the journal.
    store = PgLedgerStore(team_db, state=state(tmp_path), workspace=tmp_path)
    store.keep("res-1", "run-1", "explain", ["total"], Usage(input_tokens=80, output_tokens=40))
    store.close()
    code, out = doctor(tmp_path, capsys, "--database-url", team_db)
    assert code == 1
    assert "BAD 1 entry of calls' usage kept while the team database was away wait in" in out
    assert "`agentls doctor --repair`" in out

    code, out = doctor(tmp_path, capsys, "--database-url", team_db, repair=True)
    assert code == 0, out
    assert "repaired: applied 1 journal entry kept while the team database was away" in out
    assert "no calls' usage wait for the team database" in out
    with TokenBudgeter.for_workspace(tmp_path, database_url=team_db) as budget:
        assert budget.snapshot().used == 120  # applied once
