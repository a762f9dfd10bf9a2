"""Limits in dollars, per user and per period (day, week, month; UTC windows), on the workspace's
ledger and on a team database: a dollar limit is reserved and committed like a token limit and
holds under contention; a model with no price is refused under a dollar limit with a sentence
naming the `prices` setting; a period's window starts over when the next one begins."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.cli import main
from agentls.core.budget import BudgetExceeded, TokenBudgeter
from agentls.core.budget_limits import LimitKey, Period, Unit, user_base
from agentls.core.events import Usage
from agentls.core.limits import parse_dollar_limit
from agentls.core.pricing import CallPrice, PriceSource

# gpt-4o-mini as OpenAI publishes it (openai.com/api/pricing, read 2026-12-01; unchanged since
# 2024-07-18): $0.15 input, $0.075 cached input, $0.60 output per million tokens, that is 150, 75
# and 600 nano-dollars a token.
PRICE = CallPrice("gpt-4o-mini", PriceSource.GENAI_PRICES, 150, 75, 600)
PROMPT, OUTPUT = 80, 40
# One call: 80 prompt tokens and 40 out, $0.000036.
CALL_NANOS = PROMPT * 150 + OUTPUT * 600
NANOS = 10**9


@pytest.fixture
def ledger(tmp_path: Path, backend: str | None) -> Iterator[TokenBudgeter]:
    b = TokenBudgeter.for_workspace(tmp_path)  # the team database when `backend` names one
    yield b
    b.close()


def dollars_used(b: TokenBudgeter, scope: str = "$total") -> int:
    with b.store.transaction(write=False) as tx:
        return tx.scope_totals(scope).usage.total


async def call(b: TokenBudgeter, run_id: str) -> int:
    """One 80-token call answered in (at most) 40 tokens at gpt-4o-mini's price: the
    nano-dollars it committed, 0 when it was refused."""
    try:
        r = await b.areserve(
            run_id=run_id,
            agent="a",
            prompt_tokens=PROMPT,
            max_tokens=1024,
            price=PRICE,
            model="gpt-4o-mini",
        )
    except BudgetExceeded as exc:
        total = "the team's total" if b.store.shared else "the total"
        assert exc.unit == "usd" and f"dollar limit of {total}" in str(exc)
        return 0
    await asyncio.sleep(0)  # others reserve while this call is in flight
    used = Usage(input_tokens=PROMPT, output_tokens=min(OUTPUT, r.max_tokens))
    await b.acommit(r, used, PRICE.nanos(used) / NANOS)
    return PRICE.nanos(used)


# The least a call may cost: 80 prompt tokens and the smallest answer, 32 tokens ($0.0000312).
MINIMAL = PROMPT * 150 + 32 * 600


async def test_a_dollar_limit_holds_under_contention_like_a_token_limit(
    ledger: TokenBudgeter,
) -> None:
    limit = 1_000_000  # $0.001: about 27 calls of $0.000036
    ledger.set_limit_of(LimitKey("total", Unit.USD), limit)

    async def run(i: int) -> int:
        spent = 0
        while cost := await call(ledger, f"r{i}"):
            spent += cost
        return spent

    costs = await asyncio.gather(*(run(i) for i in range(16)))

    spent = dollars_used(ledger)
    assert spent == sum(costs)  # each call's cost, committed once
    assert spent <= limit  # never over
    # Runs waited for each other instead of refusing: refused only when what was left could not
    # pay for one more minimal call.
    assert limit - spent < MINIMAL
    snap = ledger.snapshot()
    [shown] = snap.limits
    assert (shown.unit, shown.applies_to, shown.reserved) == ("usd", "total", 0)
    assert shown.used == pytest.approx(spent / NANOS) and shown.limit == pytest.approx(0.001)


_CONTEND = """
import asyncio, sys, time
from pathlib import Path
from agentls.core.budget import BudgetExceeded, TokenBudgeter
from agentls.core.events import Usage
from agentls.core.pricing import CallPrice, PriceSource

PRICE = CallPrice("gpt-4o-mini", PriceSource.GENAI_PRICES, 150, 75, 600)

async def main() -> None:
    b = TokenBudgeter.for_workspace(Path(sys.argv[1]))  # AGENTLS_DATABASE_URL: the team's
    go = Path(sys.argv[2])
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go.exists():
        assert time.monotonic() < deadline, "the test never said go"
        await asyncio.sleep(0.01)

    async def run(i: int) -> int:
        spent = 0
        while True:
            try:
                r = await b.areserve(run_id=f"{sys.argv[3]}-{i}", agent="a", prompt_tokens=80,
                                     max_tokens=1024, price=PRICE, model="gpt-4o-mini")
            except BudgetExceeded:
                return spent
            await asyncio.sleep(0.005)
            used = Usage(input_tokens=80, output_tokens=min(40, r.max_tokens))
            await b.acommit(r, used, PRICE.nanos(used) / 1e9)
            spent += PRICE.nanos(used)

    made = await asyncio.gather(*(run(i) for i in range(4)))
    print(sum(made), flush=True)
    b.close()

asyncio.run(main())
"""


def test_a_dollar_limit_holds_across_four_processes(tmp_path: Path, backend: str | None) -> None:
    limit = 1_000_000  # $0.001
    with TokenBudgeter.for_workspace(tmp_path) as b:
        b.set_limit_of(LimitKey("total", Unit.USD), limit)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTEND, str(tmp_path), str(go), f"p{n}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()  # sixteen runs in four processes start together
    costs = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    with TokenBudgeter.for_workspace(tmp_path) as b:
        spent = dollars_used(b)
        assert b.snapshot().limits[0].reserved == 0
    assert spent == sum(costs) <= limit
    assert limit - spent < MINIMAL  # well over 90 % used: refused only when nothing was left


def test_a_model_without_a_price_is_refused_under_a_dollar_limit(ledger: TokenBudgeter) -> None:
    ledger.set_limit_of(LimitKey("total", Unit.USD), 10 * NANOS)

    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(run_id="r", agent="a", prompt_tokens=80, max_tokens=100, model="my-llama")

    message = str(info.value)
    assert "Model 'my-llama' has no known price" in message
    assert "`prices` setting" in message and '"my-llama"' in message
    assert not info.value.waitable
    assert ledger.snapshot().reserved == 0
    # Under token limits only, the same call goes on.
    ledger.set_limit_of(LimitKey("total", Unit.USD), None)
    ledger.reserve(run_id="r", agent="a", prompt_tokens=80, max_tokens=100, model="my-llama")


def test_a_users_limit_applies_to_that_users_calls_only(
    tmp_path: Path, backend: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTLS_USER", "alice")
    alice = TokenBudgeter.for_workspace(tmp_path)
    monkeypatch.setenv("AGENTLS_USER", "bob")
    bob = TokenBudgeter.for_workspace(tmp_path)
    try:
        alice.set_limit_of(LimitKey(user_base("alice"), Unit.USD, Period.MONTH), 50_000)
        r = alice.reserve(run_id="a1", agent="a", prompt_tokens=PROMPT, max_tokens=40, price=PRICE)
        alice.commit(r, Usage(input_tokens=PROMPT, output_tokens=OUTPUT))
        with pytest.raises(BudgetExceeded) as info:  # $0.000014 left of $0.00005
            alice.reserve(run_id="a2", agent="a", prompt_tokens=PROMPT, max_tokens=40, price=PRICE)
        assert "The monthly dollar limit of user alice (" in str(info.value)
        assert "--per month --user alice" in str(info.value)
        for i in range(3):  # bob's calls are not alice's
            r = bob.reserve(run_id=f"b{i}", agent="a", prompt_tokens=PROMPT, max_tokens=40,
                            price=PRICE)  # fmt: skip
            bob.commit(r, Usage(input_tokens=PROMPT, output_tokens=OUTPUT))
        [limit] = alice.snapshot().limits
        assert (limit.applies_to, limit.name, limit.period) == ("user", "alice", "month")
        assert limit.used == pytest.approx(CALL_NANOS / NANOS)
    finally:
        alice.close()
        bob.close()


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_a_daily_token_limit_starts_over_the_next_day_and_keeps_the_past_days(
    ledger: TokenBudgeter,
) -> None:
    ledger.clock = lambda: _at("2026-12-31T23:30:00")
    ledger.set_limit_of(LimitKey("total", Unit.TOKENS, Period.DAY), 300)
    for i in range(2):
        r = ledger.reserve(run_id=f"r{i}", agent="a", prompt_tokens=PROMPT, max_tokens=70)
        ledger.commit(r, Usage(input_tokens=PROMPT, output_tokens=70))
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(run_id="r2", agent="a", prompt_tokens=PROMPT, max_tokens=70)
    total = "the team's total" if ledger.store.shared else "the total"
    assert f"The daily token limit of {total} (2026-12-31, UTC) is spent" in str(info.value)
    assert "starts over at 2027-01-01 00:00 UTC" in str(info.value)

    ledger.clock = lambda: _at("2027-01-01T00:10:00")
    r = ledger.reserve(run_id="r2", agent="a", prompt_tokens=PROMPT, max_tokens=70)
    ledger.commit(r, Usage(input_tokens=PROMPT, output_tokens=70))

    [today] = ledger.snapshot().limits
    assert (today.window, today.used, today.remaining) == ("2027-01-01", 150, 150)
    with ledger.store.transaction(write=False) as tx:  # the past day's usage is kept
        assert tx.scope_totals("day/total/2026-12-31").usage.total == 300
    assert ledger.snapshot().used == 450  # the all-time total counts every day


def test_weeks_and_months_are_utc_windows() -> None:
    key = LimitKey("total", Unit.USD, Period.WEEK)
    assert key.window(_at("2026-12-31T23:59:59")) == "week/$total/2026-W53"
    assert key.window(_at("2027-01-04T00:00:00")) == "week/$total/2027-W01"
    month = LimitKey("agent:review", Unit.TOKENS, Period.MONTH)
    assert month.window(_at("2027-02-28T12:00:00")) == "month/agent:review/2027-02"


# --- end to end: the CLI and a run ------------------------------------------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("COLUMNS", "200")
    with ScriptedOpenAI(models=("gpt-4o-mini", "my-llama")) as s:
        s.responder = lambda body: Text(
            "fine", prompt_tokens=100, cached_tokens=40, completion_tokens=20
        )
        yield s


def cli(capsys: pytest.CaptureFixture[str], workspace: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--workspace", str(workspace), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_explain(capsys: pytest.CaptureFixture[str], server: ScriptedOpenAI, ws: Path, model: str):
    (ws / "a.py").write_text("x = 1\n", encoding="utf-8")
    return cli(
        capsys, ws, "run", "explain", "--file", str(ws / "a.py"), "--base-url", server.url,
        "--model", model, "--json",
    )  # fmt: skip


def test_budget_set_dollars_per_month_for_a_user(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, backend: str | None
) -> None:
    code, out, err = cli(
        capsys, tmp_path, "budget", "set", "$50", "--per", "month", "--user", "alice"
    )
    assert code == 0, err
    assert "budget of user alice set to $50.00 a month (UTC)" in out

    code, out, _ = cli(capsys, tmp_path, "budget", "--json")
    [limit] = json.loads(out)["limits"]
    month = datetime.now(UTC).strftime("%Y-%m")
    assert limit == {
        "scope": "month/$user:alice", "applies_to": "user", "name": "alice", "unit": "usd",
        "period": "month", "window": month, "limit": 50.0, "used": 0.0, "reserved": 0.0,
        "remaining": 50.0,
    }  # fmt: skip
    assert (
        cli(capsys, tmp_path, "budget", "set", "none", "--per", "month", "--user", "alice")[0] == 0
    )
    assert json.loads(cli(capsys, tmp_path, "budget", "--json")[1])["limits"] == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["$"], "quote a dollar limit"),
        (["$12.3456789012"], "expected dollars such as '$50'"),
        (["$2000000"], "more than the largest dollar limit"),
        (["$5", "--agent", "a", "--user", "b"], "--agent and --user name different limits"),
        (["$5", "--user", " "], "--user: the user name is empty"),
    ],
)
def test_budget_set_refuses_what_it_cannot_mean(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], says: str
) -> None:
    code, _, err = cli(capsys, tmp_path, "budget", "set", *argv, "--allow-unknown-agent")
    assert code == 2 and says in err and err.count("\n") == 1


@pytest.mark.parametrize("text", ["-$5", "- $5", "-5"])
def test_a_negative_dollar_limit_is_refused_as_negative(text: str) -> None:
    with pytest.raises(ValueError, match="the limit cannot be negative"):
        parse_dollar_limit(text)


def test_a_run_under_a_dollar_limit_commits_its_cost_as_the_audit_trail_records_it(
    capsys: pytest.CaptureFixture[str], server: ScriptedOpenAI, tmp_path: Path, backend: str | None
) -> None:
    assert cli(capsys, tmp_path, "budget", "set", "$1")[0] == 0

    code, out, err = run_explain(capsys, server, tmp_path, "gpt-4o-mini")

    assert code == 0, err
    cost = json.loads(out)["cost_usd"]  # (60 * 0.15 + 40 * 0.075 + 20 * 0.60) / 10^6
    assert cost == pytest.approx(0.000024)
    [limit] = json.loads(cli(capsys, tmp_path, "budget", "--json")[1])["limits"]
    assert limit["used"] == pytest.approx(cost, abs=1e-9) and limit["reserved"] == 0


def test_a_run_of_a_model_without_a_price_is_refused_under_a_dollar_limit(
    capsys: pytest.CaptureFixture[str], server: ScriptedOpenAI, tmp_path: Path
) -> None:
    assert cli(capsys, tmp_path, "budget", "set", "$1", "--per", "day")[0] == 0

    code, out, _ = run_explain(capsys, server, tmp_path, "my-llama")

    result = json.loads(out)
    assert code == 1 and result["status"] == "budget_exceeded"
    assert "`prices` setting" in result["error"] and server.requests == []
    # With a price in the user's settings file, the same run goes on.
    settings = Path.home() / ".config" / "agentls" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"prices": {"my-llama": {"input": 1, "output": 2}}}))
    code, out, _ = run_explain(capsys, server, tmp_path, "my-llama")
    assert code == 0 and json.loads(out)["cost_usd"] == pytest.approx((100 + 40) / 1e6)


def test_a_member_opens_a_window_of_an_admins_limit_but_no_other(
    tmp_path: Path, postgres_cluster: object, team_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg
    from tests.rig.postgres import PostgresCluster, database_name

    from agentls.core.stores.postgres import MEMBER_ROLE

    assert isinstance(postgres_cluster, PostgresCluster)
    with TokenBudgeter.for_workspace(tmp_path, database_url=team_db) as admin:
        admin.set_limit(10_000)
        admin.set_limit_of(LimitKey("total", Unit.TOKENS, Period.DAY), 1_000)
    postgres_cluster.login_role("erin", "erin-pw", MEMBER_ROLE)
    monkeypatch.setenv("PGPASSWORD", "erin-pw")
    erin_url = postgres_cluster.url(database_name(team_db), "erin")
    with TokenBudgeter.for_workspace(tmp_path, database_url=erin_url) as erin:
        erin.clock = lambda: _at("2030-01-02T10:00:00")  # a window nobody has opened yet
        r = erin.reserve(run_id="e", agent="a", prompt_tokens=PROMPT, max_tokens=70)
        erin.commit(r, Usage(input_tokens=PROMPT, output_tokens=70))
        [day] = erin.snapshot().limits
        assert (day.window, day.limit, day.used) == ("2030-01-02", 1_000, 150)
    with psycopg.connect(erin_url, password="erin-pw", autocommit=True) as conn:
        for window, template in [
            ("day/total/2030-01-03/x", "day/total"),  # not one level down
            ("day/total/2030-01-03", "total"),  # the all-time limit is not a template
            ("total", "day/total"),
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT agentls.open_window(%s, %s)", (window, template))


def test_a_dollar_refusal_survives_pickling() -> None:
    """Raised in a child agentls process, it may cross a process boundary."""
    import pickle

    exc = BudgetExceeded("month/$user:alice/2026-12", 31_200, 400, 50_000, unit="usd")
    unpriced = BudgetExceeded("$total", 0, 0, 10, unit="usd", unpriced="my-llama")
    for original in (exc, unpriced):
        copy = pickle.loads(pickle.dumps(original))
        assert (copy.unit, copy.unpriced, str(copy)) == (
            original.unit,
            original.unpriced,
            str(original),
        )


def test_a_version_1_team_database_is_refused_until_db_init_migrates_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, postgres_cluster: object, team_db: str
) -> None:
    from tests.rig.postgres import PostgresCluster, database_name

    assert isinstance(postgres_cluster, PostgresCluster)
    postgres_cluster.sql(  # what a database made by the previous agentls holds
        "DROP FUNCTION agentls.open_window(text, text); "
        "DELETE FROM agentls.schema_version WHERE version = 2",
        database_name(team_db),
    )
    code, _, err = cli(capsys, tmp_path, "--database-url", team_db, "budget")
    assert code == 2 and "older than this agentls needs (2)" in err
    assert "agentls --database-url URL db init" in err

    code, out, _ = cli(capsys, tmp_path, "--database-url", team_db, "db", "init")
    assert code == 0 and "migrated agentls schema from version 1 to 2" in out
    code, out, err = cli(capsys, tmp_path, "--database-url", team_db, "budget", "set", "$5",
                         "--per", "day")  # fmt: skip
    assert code == 0, err
