"""One budget for a whole team: "machines" (separate processes, workspaces and users) share a team
database, never overshoot its limit together, use what it allows, and see each other's spend and
trail; a reservation whose holder is on another machine is freed when its lease runs out."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.rig.postgres import PostgresCluster
from tests.rig.scripted_openai import ScriptedOpenAI, Text

from agentls.core.budget import BudgetExceeded, TokenBudgeter
from agentls.core.stores.pg_ledger import PgLedgerStore
from agentls.core.stores.postgres import MEMBER_ROLE

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gpt-4o-mini"  # exact prompt counts (bpe-openai)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(models=(MODEL,)) as s:
        # A 120-token call: the provider reports an 80-token prompt and a 40-token answer.
        s.latency = 0.05
        s.responder = lambda body: Text("It doubles x.", prompt_tokens=80, completion_tokens=40)
        yield s


def member_url(pg: PostgresCluster, owner_url: str, user: str) -> str:
    """A member's URL (its password goes in PGPASSWORD, as docs/team.md says)."""
    pg.login_role(user, f"pw-{user}", MEMBER_ROLE)
    return pg.url(owner_url.rsplit("/", 1)[-1], user)


def workspace(root: Path, name: str) -> Path:
    ws = root / name
    ws.mkdir()
    (ws / "two.py").write_text("def twice(x):\n    return 2 * x\n")
    tasks = [{"agent": "explain", "goal": f"explain {n}", "file": "two.py"} for n in range(8)]
    (ws / "tasks.json").write_text(json.dumps(tasks))
    return ws


def agentls(ws: Path, url: str, user: str, *args: str, base_url: str = "") -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "AGENTLS_DATABASE_URL": url,
        "AGENTLS_USER": user,
        "PGPASSWORD": f"pw-{user}",
        "OPENAI_API_KEY": "sk-test",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "server"), str(ROOT)]),
    }
    model = ["--model", MODEL, "--base-url", base_url] if base_url else []
    return subprocess.Popen(
        [sys.executable, "-m", "agentls", "--workspace", str(ws), *args, *model],
        env=env,
        cwd=ws,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_machines_running_eight_runs_each_never_overshoot_the_teams_limit(
    tmp_path: Path, server: ScriptedOpenAI, postgres_cluster: PostgresCluster, team_db: str
) -> None:
    with TokenBudgeter.for_workspace(tmp_path, database_url=team_db) as admin:
        admin.set_limit(1500)
    alice = member_url(postgres_cluster, team_db, "alice")
    bob = member_url(postgres_cluster, team_db, "bob")
    ws_a, ws_b, ws_c = (workspace(tmp_path, n) for n in ("repo-a", "repo-b", "repo-c"))

    runs = [
        agentls(ws, url, user, "parallel", "--tasks", str(ws / "tasks.json"), "--max-parallel", "8",
                "--json", base_url=server.url)
        for ws, url, user in ((ws_a, alice, "alice"), (ws_b, bob, "bob"))
    ]  # fmt: skip
    results = []
    for proc in runs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode in (0, 1), err
        results += json.loads(out)["results"]

    finished = [r for r in results if r["status"] == "finished"]
    refused = [r for r in results if r["status"] == "budget_exceeded"]
    assert len(finished) + len(refused) == 16
    assert len(server.requests) == len(finished)  # no call was made that the budget refused
    # A third machine sees both: the team's spend, never over, at least 90 % of it used...
    shown = agentls(ws_c, member_url(postgres_cluster, team_db, "carol"), "carol", "budget",
                    "--json")  # fmt: skip
    out, err = shown.communicate(timeout=60)
    assert shown.returncode == 0, err
    snap = json.loads(out)
    assert 0.9 * 1500 <= snap["used"] <= 1500 and snap["reserved"] == 0
    assert snap["used"] == 120 * len(finished)
    for r in refused:
        assert "Team token budget exhausted" in r["error"]  # the team's total, not a workspace's
    # ...and one audit trail that says who ran what where.
    with psycopg.connect(team_db) as conn:
        who = conn.execute(
            'SELECT DISTINCT "user", workspace FROM agentls.events WHERE kind = %s',
            ("finished",),
        ).fetchall()
        entries = conn.execute(
            'SELECT "user", input + output FROM agentls.ledger_entries ORDER BY "user"'
        ).fetchall()
    assert sorted(who) == [("alice", "repo-a"), ("bob", "repo-b")]
    assert sum(t for _, t in entries) == snap["used"]  # one ledger entry a call, with its user
    trail = agentls(ws_c, member_url(postgres_cluster, team_db, "carol"), "carol", "audit",
                    "--json")  # fmt: skip
    out, err = trail.communicate(timeout=60)
    assert trail.returncode == 0, err
    closing = [json.loads(line) for line in out.splitlines()]
    closing = [e for e in closing if e["kind"] in ("finished", "budget_exceeded")]
    assert len(closing) == 16


_HOLD_ELSEWHERE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agentls.core.budget import TokenBudgeter
    from agentls.core.stores.pg_ledger import PgLedgerStore

    store = PgLedgerStore(sys.argv[1], state=Path(sys.argv[2]), lease_seconds=float(sys.argv[3]))
    b = TokenBudgeter(store=store)
    b.reserve(run_id="far", agent="a", prompt_tokens=600, max_tokens=200)
    print("holding", flush=True)
    time.sleep(600)
    """
)


def _unshare() -> list[str]:
    """A new pid namespace and host name: to the ledger, another machine."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to run a process as another machine")
    return [
        "unshare",
        "--pid",
        "--uts",
        "--fork",
        "--kill-child",
        "sh",
        "-c",
        'hostname elsewhere && exec "$@"',
        "-",
    ]


async def test_a_reservation_held_on_another_machine_lasts_while_renewed_and_is_freed_when_its_lease_runs_out(
    tmp_path: Path, team_db: str
) -> None:
    lease = 3.0  # renewed every second: room for a busy machine
    here = TokenBudgeter(store=PgLedgerStore(team_db, state=tmp_path, lease_seconds=lease))
    here.set_limit(1000)
    holder = subprocess.Popen(
        [*_unshare(), sys.executable, "-c", _HOLD_ELSEWHERE, team_db, str(tmp_path), str(lease)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "server"), str(ROOT)])},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with psycopg.connect(team_db) as conn:
            (host,) = conn.execute("SELECT host FROM agentls.reservations").fetchone()
        assert host == "elsewhere"
        # Renewed by its holder, it outlives its lease several times over.
        await asyncio.sleep(2 * lease)
        assert here.snapshot().reserved == 800
        with pytest.raises(BudgetExceeded) as info:
            here.reserve(run_id="near", agent="a", prompt_tokens=500, max_tokens=100)
        assert info.value.waitable
    finally:
        holder.kill()  # kill -9, as a machine that vanishes
        holder.wait(timeout=30)
    # Its process id means nothing here, so nothing is swept at once: the lease has to run out.
    with pytest.raises(BudgetExceeded):
        here.reserve(run_id="near", agent="a", prompt_tokens=500, max_tokens=100)
    granted = await here.areserve(
        run_id="near", agent="a", prompt_tokens=500, max_tokens=100, wait_seconds=30
    )
    assert granted.max_tokens == 100
    assert here.snapshot().reserved == 600
    here.release(granted)
    here.close()
