"""A team database that goes away, refuses a login, lacks its schema or holds a newer one, and
members who try what only admins may: nothing is lost or counted twice, and each failure is one
sentence that names the database without its password and says what to do."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from tests.rig.blackhole import Blackhole
from tests.rig.eventually import aeventually
from tests.rig.postgres import PostgresCluster, database_name, free_port
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main
from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.budget_limits import LimitKey, Unit
from agentls.core.engine import EngineSettings, build_runtime
from agentls.core.events import EventKind, RunEvent, RunStatus
from agentls.core.runtime import AgentRuntime
from agentls.core.stores.identity import origin
from agentls.core.stores.journal import journal_path
from agentls.core.stores.pg_audit import _row
from agentls.core.stores.pg_backoff import BACKOFF
from agentls.core.stores.postgres import ADMIN_ROLE, MEMBER_ROLE
from agentls.core.target import Target

MODEL = "gpt-4o-mini"


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(models=(MODEL,)) as s:
        yield s


@pytest.fixture
async def runtime(
    tmp_path: Path, server: ScriptedOpenAI, team_db: str
) -> AsyncIterator[AgentRuntime]:
    (tmp_path / "two.py").write_text("def twice(x):\n    return 2 * x\n")
    settings = EngineSettings(
        model=MODEL, base_url=server.url, api_key="sk-t", database_url=team_db
    )
    rt = build_runtime(tmp_path, settings)
    yield rt
    await rt.aclose()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_a_database_stopped_mid_call_loses_nothing_and_counts_nothing_twice(
    runtime: AgentRuntime,
    server: ScriptedOpenAI,
    postgres_cluster: PostgresCluster,
    team_db: str,
    tmp_path: Path,
) -> None:
    runtime.budgeter.set_limit(10_000)
    answer = threading.Event()

    def slow(body: object) -> Text:
        answer.wait(30)  # the call is in flight until the test lets it answer
        return Text("It doubles x.", prompt_tokens=80, completion_tokens=40)

    server.responder = slow
    target = Target(path=tmp_path / "two.py")
    first = asyncio.create_task(runtime.delegate("explain", "explain", target))
    await aeventually(lambda: server.requests, "the model call to be in flight")
    postgres_cluster.stop()
    try:
        answer.set()
        done = await first
        # The call ended while the database was away: its usage and events are kept locally.
        assert done.status is RunStatus.FINISHED and done.usage.total == 120
        assert journal_path(tmp_path / ".agentls", "ledger.journal").stat().st_size > 0
        assert journal_path(tmp_path / ".agentls", "audit.journal").stat().st_size > 0
        # New calls are refused meanwhile, saying why; none is made.
        refused = await runtime.delegate("explain", "again", target)
        assert refused.status is RunStatus.FAILED
        assert "is unreachable" in (refused.error or "")
        assert "no new model calls" in (refused.error or "")
        assert "pg-test-super" not in (refused.error or "")
        assert len(server.requests) == 1
        kept = journal_path(tmp_path / ".agentls", "ledger.journal").read_bytes()
    finally:
        postgres_cluster.restart()

    # Back: what was kept is applied before anything else, exactly once.
    snap = await runtime.budgeter.asnapshot()
    assert (snap.used, snap.reserved) == (120, 0)
    assert journal_path(tmp_path / ".agentls", "ledger.journal").stat().st_size == 0
    # A replay cut short after its commit (the journal still full) adds nothing a second time.
    journal_path(tmp_path / ".agentls", "ledger.journal").write_bytes(kept)
    with TokenBudgeter.for_workspace(tmp_path, database_url=team_db) as other:
        assert other.snapshot().used == 120
    with AuditStore.for_workspace(tmp_path, database_url=team_db) as audit:
        kinds = [e.kind for e in audit.query(run_id=done.run_id)]
        assert kinds.count(EventKind.MODEL_CALL) == 1 and kinds[-1] is EventKind.FINISHED
        assert [e.kind for e in audit.query(run_id=refused.run_id)][-1] is EventKind.FAILED
    with psycopg.connect(team_db) as conn:
        (entries,) = conn.execute("SELECT count(*) FROM agentls.ledger_entries").fetchone()
    assert entries == 1
    # And calls are made again.
    server.responder = lambda body: Text("Twice x.", prompt_tokens=80, completion_tokens=40)
    again = await runtime.delegate("explain", "explain", target)
    assert again.status is RunStatus.FINISHED, again.error
    assert (await runtime.budgeter.asnapshot()).used == 240


# gpt-4o-mini as OpenAI publishes it: $0.15 input, $0.075 cached input, $0.60 output per million
# tokens, that is 150, 75 and 600 nano-dollars a token (tests/test_budget_dollars.py).
PROMPT, CACHED, OUTPUT = 80, 30, 40
CALL_NANOS = (PROMPT - CACHED) * 150 + CACHED * 75 + OUTPUT * 600  # $0.00003375


def dollars_used(b: TokenBudgeter) -> int:
    with b.store.transaction(write=False) as tx:
        return tx.scope_totals("$total").usage.total


async def test_a_call_under_a_dollar_limit_kept_while_the_database_is_away_is_charged_once(
    runtime: AgentRuntime,
    server: ScriptedOpenAI,
    postgres_cluster: PostgresCluster,
    team_db: str,
    tmp_path: Path,
) -> None:
    runtime.budgeter.set_limit_of(LimitKey("total", Unit.USD), 10**9)  # $1
    answer = threading.Event()

    def slow(body: object) -> Text:
        answer.wait(30)
        return Text(
            "It doubles x.", prompt_tokens=PROMPT, cached_tokens=CACHED, completion_tokens=OUTPUT
        )

    server.responder = slow
    target = Target(path=tmp_path / "two.py")
    first = asyncio.create_task(runtime.delegate("explain", "explain", target))
    await aeventually(lambda: server.requests, "the model call to be in flight")
    postgres_cluster.stop()
    ledger = journal_path(tmp_path / ".agentls", "ledger.journal")
    try:
        answer.set()
        done = await first
        assert done.status is RunStatus.FINISHED
        assert done.cost_usd == pytest.approx(CALL_NANOS / 1e9)
        kept = ledger.read_bytes()
        # The token commit and the dollar commit are both kept, each under its own id.
        scopes = [json.loads(line)["scopes"] for line in kept.splitlines()]
        assert any("$total" in s for s in scopes) and any("total" in s for s in scopes)
    finally:
        postgres_cluster.restart()

    # Back: the dollar scope holds the call's cost once, the token total its usage once.
    snap = await runtime.budgeter.asnapshot()
    assert (snap.used, snap.reserved) == (PROMPT + OUTPUT, 0)
    assert dollars_used(runtime.budgeter) == CALL_NANOS
    assert ledger.stat().st_size == 0
    # The server restarts again and the same journal is replayed again: nothing is added.
    postgres_cluster.stop()
    postgres_cluster.restart()
    ledger.write_bytes(kept)
    with TokenBudgeter.for_workspace(tmp_path, database_url=team_db) as other:
        assert other.snapshot().used == PROMPT + OUTPUT
        assert dollars_used(other) == CALL_NANOS
    assert ledger.stat().st_size == 0
    with psycopg.connect(team_db) as conn:
        (spent,) = conn.execute(
            "SELECT output FROM agentls.scopes WHERE scope = '$total'"
        ).fetchone()
        (entries,) = conn.execute("SELECT count(*) FROM agentls.ledger_entries").fetchone()
    assert (spent, entries) == (CALL_NANOS, 2)  # one token entry, one dollar entry


async def test_a_host_that_never_answers_costs_one_connect_timeout_not_one_per_call(
    server: ScriptedOpenAI,
    postgres_cluster: PostgresCluster,
    team_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]  # the backoff's clock stands still until the test moves it
    monkeypatch.setattr(BACKOFF, "clock", lambda: now[0])
    (tmp_path / "two.py").write_text("def twice(x):\n    return 2 * x\n")
    target = Target(path=tmp_path / "two.py")
    with Blackhole(postgres_cluster.port) as hole:
        url = team_db.replace(f":{postgres_cluster.port}/", f":{hole.port}/")
        url += "?connect_timeout=2"
        settings = EngineSettings(model=MODEL, base_url=server.url, api_key="sk-t",
                                  database_url=url)  # fmt: skip
        runtime = build_runtime(tmp_path, settings)
        try:
            runtime.budgeter.set_limit(10_000)
            answer = threading.Event()

            def slow(body: object) -> Text:
                answer.wait(30)
                return Text("It doubles x.", prompt_tokens=80, completion_tokens=40)

            server.responder = slow
            first = asyncio.create_task(runtime.delegate("explain", "explain", target))
            await aeventually(lambda: server.requests, "the model call to be in flight")
            hole.swallow()  # the network drops everything: connects time out
            answer.set()
            done = await first
            # Its commit failed on the cut connection, or waited out a connect timeout: kept.
            assert done.status is RunStatus.FINISHED
            assert journal_path(tmp_path / ".agentls", "ledger.journal").stat().st_size > 0
            # The next call pays (at most) one connect timeout...
            refused = await runtime.delegate("explain", "again", target)
            assert refused.status is RunStatus.FAILED
            tried = hole.accepted

            # ...and the one after it none: refused at once, saying why and when agentls tries
            # again, without a connect.
            refused = await runtime.delegate("explain", "once more", target)
            assert refused.status is RunStatus.FAILED
            assert "is unreachable (connection timeout expired)" in (refused.error or "")
            assert "no new model calls are made until it is back" in (refused.error or "")
            assert "agentls tries to connect again in 1 s" in (refused.error or "")
            assert "pg-test-super" not in (refused.error or "")
            assert hole.accepted == tried and len(server.requests) == 1

            hole.relay()  # the network is back, and the pause is over
            now[0] += 60
            server.responder = lambda body: Text("Twice x.", prompt_tokens=80, completion_tokens=40)
            again = await runtime.delegate("explain", "explain", target)
            assert again.status is RunStatus.FINISHED, again.error
            # What was kept is committed once, before the new call.
            assert (await runtime.budgeter.asnapshot()).used == 240
            assert journal_path(tmp_path / ".agentls", "ledger.journal").stat().st_size == 0
        finally:
            await runtime.aclose()


def signed_in(
    cluster: PostgresCluster, team_db: str, monkeypatch: pytest.MonkeyPatch, name: str, role: str
) -> str:
    """The URL of login role `name` (granted `role`), its password `<name>-pw` in PGPASSWORD."""
    cluster.login_role(name, f"{name}-pw", role)
    monkeypatch.setenv("PGPASSWORD", f"{name}-pw")
    return cluster.url(database_name(team_db), name)


def test_connection_refused_is_one_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"postgresql://alice:s3cret-pw@127.0.0.1:{free_port()}/agentls"
    code, _, err = cli(capsys, "--workspace", str(tmp_path), "--database-url", url, "budget")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "the team database postgresql://alice@127.0.0.1:" in err
    assert "is unreachable (Connection refused)" in err
    assert "s3cret-pw" not in err
    assert not (tmp_path / ".agentls" / "ledger.db").exists()  # never a silent switch to SQLite


def test_a_wrong_password_is_one_sentence_without_the_password(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    postgres_cluster: PostgresCluster,
    team_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_cluster.login_role("dana", "right-password", MEMBER_ROLE)
    monkeypatch.setenv("PGPASSWORD", "wrong-password")
    url = postgres_cluster.url(database_name(team_db), "dana")
    code, _, err = cli(capsys, "--workspace", str(tmp_path), "--database-url", url, "budget")
    assert code == 2 and err.count("\n") == 1
    assert "refused the login of user 'dana'" in err and "PGPASSWORD or ~/.pgpass" in err
    assert "password" in err and "wrong-password" not in err and "right-password" not in err
    # Given in the URL, the password is not shown either.
    url = postgres_cluster.url(database_name(team_db), "dana", "wrong-in-url")
    code, _, err = cli(capsys, "--workspace", str(tmp_path), "--database-url", url, "budget")
    assert code == 2 and "wrong-in-url" not in err and "postgresql://dana@127.0.0.1" in err


def test_a_database_without_the_schema_says_to_run_db_init(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    url = postgres_cluster.new_database("bare")
    code, _, err = cli(capsys, "--workspace", str(tmp_path), "--database-url", url, "budget")
    assert code == 2 and err.count("\n") == 1
    assert "has no agentls schema" in err and "agentls --database-url URL db init" in err
    assert "pg-test-super" not in err
    code, out, _ = cli(capsys, "--database-url", url, "db", "init")
    assert code == 0 and "created agentls schema version 2" in out
    code, out, _ = cli(capsys, "--workspace", str(tmp_path), "--database-url", url, "budget")
    assert code == 0


def test_a_schema_newer_than_this_agentls_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    postgres_cluster: PostgresCluster,
    team_db: str,
) -> None:
    postgres_cluster.sql(
        "INSERT INTO agentls.schema_version (version) VALUES (99)", database_name(team_db)
    )
    for argv in (("budget",), ("audit",), ("db", "init")):
        code, _, err = cli(capsys, "--workspace", str(tmp_path), "--database-url", team_db, *argv)
        assert code == 2 and err.count("\n") == 1, argv
        assert "holds agentls schema version 99, newer than this agentls understands" in err
        assert "upgrade agentls" in err


def test_a_member_may_not_change_a_limit_reset_usage_or_delete_the_audit_trail(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    postgres_cluster: PostgresCluster,
    team_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with TokenBudgeter.for_workspace(tmp_path, database_url=team_db) as admin:
        admin.set_limit(5000)
    erin = signed_in(postgres_cluster, team_db, monkeypatch, "erin", MEMBER_ROLE)
    ws = ["--workspace", str(tmp_path), "--database-url", erin]

    code, _, err = cli(capsys, *ws, "budget", "set", "1M")
    assert code == 2 and err.count("\n") == 1
    assert "refused to let user 'erin' change a limit" in err
    assert f"only members of {ADMIN_ROLE} may" in err
    code, _, err = cli(capsys, *ws, "budget", "reset")
    assert code == 2 and "refused to let user 'erin' reset usage" in err
    code, _, err = cli(capsys, *ws, "audit", "prune", "--before", "0s")
    assert code == 2 and "refused to let user 'erin' delete audit events" in err
    code, out, _ = cli(capsys, *ws, "budget", "--json")
    assert code == 0 and '"limit": 5000' in out  # reading is a member's right
    # Not the client's goodwill: the database itself refuses a member's SQL.
    with psycopg.connect(erin, password="erin-pw", autocommit=True) as conn:
        for statement in (
            "UPDATE agentls.scopes SET lim = NULL",
            "DELETE FROM agentls.events",
            "UPDATE agentls.events SET json = '{}'",
            "DELETE FROM agentls.ledger_entries",
            "SELECT agentls.set_run_limit('total', NULL)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    # An admin may.
    lead = signed_in(postgres_cluster, team_db, monkeypatch, "lead", ADMIN_ROLE)
    code, out, err = cli(capsys, "--workspace", str(tmp_path), "--database-url", lead, "budget",
                         "set", "1M")  # fmt: skip
    assert code == 0, err
    assert "1,000,000 tokens" in out


def test_db_init_twice_changes_nothing_and_grants_roles(
    capsys: pytest.CaptureFixture[str], postgres_cluster: PostgresCluster, team_db: str
) -> None:
    postgres_cluster.login_role("fred", "fred-pw")
    code, out, _ = cli(capsys, "--database-url", team_db, "db", "init", "--member", "fred")
    assert code == 0
    assert "agentls schema version 2 is up to date" in out
    assert f"granted {MEMBER_ROLE} to fred" in out
    assert "pg-test-super" not in out
    code, out, _ = cli(capsys, "--database-url", team_db, "db", "status")
    assert code == 0 and "schema version 2, ready" in out


def test_db_init_by_a_member_says_to_run_it_as_the_owner(
    capsys: pytest.CaptureFixture[str],
    postgres_cluster: PostgresCluster,
    team_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not "ask an admin": an admin may not run it either; the database's owner does."""
    gina = signed_in(postgres_cluster, team_db, monkeypatch, "gina", MEMBER_ROLE)

    code, _, err = cli(capsys, "--database-url", gina, "db", "init")

    assert code == 2 and err.count("\n") == 1
    assert "refused to let user 'gina' create or migrate the agentls schema" in err
    assert "run `agentls db init` as the user that created the schema" in err
    assert "ask an admin" not in err and "gina-pw" not in err


async def test_a_journal_a_repository_ships_is_never_replayed_into_the_team_database(
    tmp_path: Path, team_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A clone's .agentls/ may hold a ledger.journal and an audit.journal: replayed, they would
    # charge the team's budget and forge events in its trail under the user's name.
    genuine = tmp_path / "genuine"
    genuine.mkdir()
    forged = RunEvent(kind=EventKind.STARTED, run_id="forged-run", agent="forged", goal="g")
    with AuditStore.for_workspace(genuine, database_url=team_db) as audit:
        audit.append(forged)
        # Exactly what the store keeps in a journal while the database is away.
        row = list(_row(forged, origin(genuine)))
    with psycopg.connect(team_db) as conn:
        conn.execute("DELETE FROM agentls.events WHERE run_id = 'forged-run'")
    clone = tmp_path / "clone"
    (clone / ".agentls").mkdir(parents=True)
    (clone / ".agentls" / "audit.journal").write_text(json.dumps({"row": row}) + "\n")

    with AuditStore.for_workspace(clone, database_url=team_db) as audit:
        assert audit.query(run_id="forged-run") == []
    assert (clone / ".agentls" / "audit.journal").stat().st_size > 0  # left as it was
    assert any("is not read" in r.getMessage() for r in caplog.records)


async def test_a_spent_team_total_is_called_the_teams_and_an_admins_to_raise(
    runtime: AgentRuntime, server: ScriptedOpenAI, tmp_path: Path
) -> None:
    server.responder = lambda body: Text("It doubles x.", prompt_tokens=80, completion_tokens=40)
    target = Target(path=tmp_path / "two.py")
    runtime.budgeter.set_limit(50)  # less than one call's prompt
    refused = await runtime.delegate("explain", "explain", target)
    assert refused.status is RunStatus.BUDGET_EXCEEDED and server.requests == []
    error = refused.error or ""
    assert error.startswith("Team token budget exhausted: the next model call needs at least")
    assert "of the team's 50-token total in the team database remain" in error
    assert "an admin of the team database raises it with `agentls budget set N`" in error
    assert "Workspace" not in error and "workspace" not in error

    runtime.budgeter.set_limit(None)
    runtime.budgeter.set_limit_of(LimitKey("total", Unit.USD), 1000)  # $0.000001
    refused = await runtime.delegate("explain", "explain", target)
    assert refused.status is RunStatus.BUDGET_EXCEEDED and server.requests == []
    assert "The dollar limit of the team's total is spent" in (refused.error or "")
    assert "an admin of the team database raises it with `agentls budget set '$N'`" in (
        refused.error or ""
    )
