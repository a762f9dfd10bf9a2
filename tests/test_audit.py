"""Audit store: round trips, queries, per-agent totals, redaction, several processes appending at
once, and a real kill -9 in the middle of a run followed by a restart."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentls.core.audit import AuditStore
from agentls.core.budget import TokenBudgeter
from agentls.core.events import EventKind, RunEvent, RunStatus, Usage
from agentls.core.redact import REDACTED, redact, redact_text, refresh_env_secrets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path, backend: str | None) -> Iterator[AuditStore]:
    s = AuditStore.for_workspace(tmp_path)  # the team database when `backend` names one
    assert s.shared == (backend is not None)
    yield s
    s.close()


def ev(kind: EventKind, run_id: str = "run1", agent: str = "reviewer", **kw: Any) -> RunEvent:
    kw.setdefault("goal", "review the selection")
    return RunEvent(kind=kind, run_id=run_id, agent=agent, **kw)


def a_run(
    run_id: str,
    agent: str,
    calls: list[Usage],
    *,
    t0: float = 1_700_000_000.0,
    parent: str | None = None,
    depth: int = 0,
    closing_usage: Usage | None = None,
    status: RunStatus = RunStatus.FINISHED,
) -> list[RunEvent]:
    """A complete run: started, one model call per usage, a tool call, output, closing event."""
    events = [ev(EventKind.STARTED, run_id, agent, time=t0, parent_run_id=parent, depth=depth)]
    total = Usage()
    for i, call in enumerate(calls):
        total += call
        events.append(
            ev(
                EventKind.MODEL_CALL,
                run_id,
                agent,
                time=t0 + 1 + i,
                usage=total,
                parent_run_id=parent,
                depth=depth,
                data={"turn": i + 1, "model": "m", "call_usage": call.model_dump()},
            )
        )
    events.append(
        ev(
            EventKind.TOOL_CALL,
            run_id,
            agent,
            time=t0 + 50,
            usage=total,
            parent_run_id=parent,
            depth=depth,
            data={"tool": "read_file", "arguments": "path='src/app.py'"},
        )
    )
    events.append(
        ev(EventKind.OUTPUT, run_id, agent, time=t0 + 60, usage=total, data={"summary": "ok"})
    )
    events.append(
        ev(
            EventKind(status.value),
            run_id,
            agent,
            time=t0 + 61,
            status=status,
            usage=closing_usage or total,
            duration_ms=61_000.0,
            parent_run_id=parent,
            depth=depth,
            artifacts=[{"path": "src/app.py", "kind": "edit"}],
            error=None if status is RunStatus.FINISHED else "boom",
        )
    )
    return events


def test_events_read_back_equal_in_order(store: AuditStore) -> None:
    events = a_run("run1", "reviewer", [Usage(input_tokens=100, output_tokens=20)])
    events.insert(2, ev(EventKind.EDIT_PROPOSED, time=1_700_000_001.5, artifacts=[{"path": "x"}]))
    events.insert(3, ev(EventKind.EDIT_APPLIED, time=1_700_000_001.5))  # same time: insertion
    for e in events:
        store.append(e)
    assert store.query() == sorted(events, key=lambda e: e.time)
    assert [e.kind for e in store.query()][2:4] == [EventKind.EDIT_PROPOSED, EventKind.EDIT_APPLIED]


def test_output_deltas_are_not_stored_and_duplicates_are_ignored(store: AuditStore) -> None:
    started = ev(EventKind.STARTED)
    store.append(started)
    store.append(ev(EventKind.OUTPUT_DELTA, data={"delta": "hel"}))
    store.append(started)  # a retried append
    assert store.query() == [started]


def test_closing_event_keeps_the_execution_record_fields(store: AuditStore) -> None:
    usage = Usage(input_tokens=900, cached_input_tokens=300, output_tokens=100, reasoning_tokens=40)
    for e in a_run("run1", "reviewer", [usage], status=RunStatus.FAILED):
        store.append(e)
    (closing,) = store.runs()
    assert closing.execution_record() == {
        "agent_name": "reviewer",
        "goal": "review the selection",
        "status": "failed",
        "tokens_used": 1000,
        "duration": 61.0,
        "artifacts": [{"path": "src/app.py", "kind": "edit"}],
        "error": "boom",
    }


def test_queries_filter_by_run_agent_time_kind_and_limit(store: AuditStore) -> None:
    for e in a_run("r1", "reviewer", [Usage(input_tokens=1)], t0=1000.0):
        store.append(e)
    for e in a_run("r2", "writer", [Usage(input_tokens=1)] * 2, t0=2000.0):
        store.append(e)
    assert {e.run_id for e in store.query(run_id="r2")} == {"r2"}
    assert {e.agent for e in store.query(agent="reviewer")} == {"reviewer"}
    assert all(e.time >= 2000.0 for e in store.query(since=2000.0))
    assert len(store.query(since=2000.0)) == 6
    calls = store.query(kinds={EventKind.MODEL_CALL})
    assert [e.run_id for e in calls] == ["r1", "r2", "r2"]
    latest = store.query(limit=2)
    assert [e.kind for e in latest] == [
        EventKind.OUTPUT,
        EventKind.FINISHED,
    ]  # newest two, in order
    assert latest[0].run_id == "r2"
    assert [r.run_id for r in store.runs()] == ["r1", "r2"]
    assert store.runs(agent="writer")[0].usage.input_tokens == 2
    assert store.runs(kinds={EventKind.MODEL_CALL}) == []
    assert store.query(limit=0) == []
    assert store.run_ids("r") == ["r2", "r1"]


def test_totals_by_agent_include_child_runs_counted_once(store: AuditStore) -> None:
    child_calls = [Usage(input_tokens=400, output_tokens=100), Usage(input_tokens=300)]
    parent_calls = [Usage(input_tokens=1000, cached_input_tokens=200, output_tokens=50)]
    child_total = child_calls[0] + child_calls[1]
    # The parent's closing usage rolls its child up; the per-agent totals must not count it twice.
    for e in a_run(
        "parent",
        "orchestrator",
        parent_calls,
        closing_usage=parent_calls[0] + child_total,
    ):
        store.append(e)
    for e in a_run("child", "reviewer", child_calls, parent="parent", depth=1, t0=1_700_000_010):
        store.append(e)
    # A run whose backend reported no per-call usage counts by its closing event.
    store.append(
        ev(
            EventKind.FINISHED,
            "bare",
            "writer",
            status=RunStatus.FINISHED,
            usage=Usage(input_tokens=7, output_tokens=3, estimated=True),
        )
    )
    totals = store.totals_by_agent()
    assert totals == {
        "orchestrator": parent_calls[0],
        "reviewer": child_total,
        "writer": Usage(input_tokens=7, output_tokens=3, estimated=True),
    }
    assert store.totals_by_agent(since=time.time() - 60) == {"writer": totals["writer"]}


def test_export_jsonl_writes_one_event_a_line(store: AuditStore) -> None:
    events = a_run("r1", "reviewer", [Usage(input_tokens=5)])
    for e in events:
        store.append(e)
    out = io.StringIO()
    assert store.export_jsonl(out) == len(events)
    lines = out.getvalue().splitlines()
    assert [RunEvent.model_validate_json(line) for line in lines] == events
    out = io.StringIO()
    assert store.export_jsonl(out, kinds={EventKind.FINISHED}) == 1


def test_events_survive_reopening(tmp_path: Path) -> None:
    events = a_run("r1", "reviewer", [Usage(input_tokens=5)])
    with AuditStore.for_workspace(tmp_path) as s:
        for e in events:
            s.append(e)
    assert (tmp_path / ".agentls" / "audit.db").is_file()
    with AuditStore.for_workspace(tmp_path) as s:
        assert s.query() == events


# Redaction.

OPENAI_KEY = "sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7d"
ANTHROPIC_KEY = "sk-ant-api03-Xy7Zq2Lm9Pk4Rt6Vw8Ab1Cd3Ef5Gh7Ij9Kl1Mn3Op5Qr7St9Uv1Wx3Yz5-AbCdEfAA"
GITHUB_TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
GITHUB_PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
HIGH_ENTROPY = "q8Zr2Xv5Lk9Pw3Nt7Hb4Jm6Ys1Dg0Fc8Qe2Wa5Ru"


def test_stored_events_never_contain_secrets(tmp_path: Path) -> None:
    event = ev(
        EventKind.TOOL_CALL,
        goal=f"call the API with key {OPENAI_KEY}",
        error=f"401 for Authorization: Bearer {ANTHROPIC_KEY}",
        artifacts=[{"headers": {"Authorization": "Bearer abc.def", "X-Request": "1"}}],
        data={
            "tool": "http_get",
            "arguments": {
                "url": "https://api.example.com/v1",
                "api_key": "plain-looking-value",
                "apiKey": 12345678,
                "headers": [["Authorization", "token zzz"]],
                "env": f"GITHUB_TOKEN={GITHUB_TOKEN} AWS={AWS_KEY_ID}",
                "note": f"pat {GITHUB_PAT} and {HIGH_ENTROPY}",
                "password": "hunter2",
            },
            "input_tokens": 5,
            "max_tokens": 1024,
        },
    )
    with AuditStore.for_workspace(tmp_path) as s:
        s.append(event)
        (stored,) = s.query()
    # Nothing secret on disk, in the database or its write-ahead log.
    raw = b"".join(p.read_bytes() for p in (tmp_path / ".agentls").glob("audit.db*"))
    for secret in (
        OPENAI_KEY,
        ANTHROPIC_KEY,
        GITHUB_TOKEN,
        GITHUB_PAT,
        AWS_KEY_ID,
        HIGH_ENTROPY,
        "plain-looking-value",
        "12345678",
        "abc.def",
        "token zzz",
        "hunter2",
    ):
        assert secret.encode() not in raw, secret
    args = stored.data["arguments"]
    assert args["url"] == "https://api.example.com/v1"
    assert args["api_key"] == REDACTED and args["apiKey"] == REDACTED
    assert args["headers"] == [["Authorization", REDACTED]]
    assert stored.goal == f"call the API with key {REDACTED}"
    assert stored.error == f"401 for Authorization: Bearer {REDACTED}"
    assert stored.artifacts == [{"headers": {"Authorization": REDACTED, "X-Request": "1"}}]
    # Token counts are not secrets.
    assert stored.data["input_tokens"] == 5 and stored.data["max_tokens"] == 1024
    assert stored.data["tool"] == "http_get"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key: {OPENAI_KEY}", f"key: {REDACTED}"),
        (f"x-api-key: {ANTHROPIC_KEY}", f"x-api-key: {REDACTED}"),
        (
            "Authorization: Bearer eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl",
            f"Authorization: Bearer {REDACTED}",
        ),
        (
            "curl -H 'Authorization: Basic dXNlcjpwYXNz'",
            f"curl -H 'Authorization: Basic {REDACTED}'",
        ),
        ("bearer abcdefghijklmnop1234", f"bearer {REDACTED}"),
        (f"export GH={GITHUB_TOKEN}", f"export GH={REDACTED}"),
        (f"id {AWS_KEY_ID} here", f"id {REDACTED} here"),
        ("OPENAI_API_KEY=abc123def456ghi789", f"OPENAI_API_KEY={REDACTED}"),
        ('password = "hunter22"', f'password = "{REDACTED}"'),
        ('{"client_secret": "s3cr3t-v4lue"}', f'{{"client_secret": "{REDACTED}"}}'),
        ("postgres://app:s3cretpw@db:5432/app", f"postgres://app:{REDACTED}@db:5432/app"),
        (f"blob {HIGH_ENTROPY} end", f"blob {REDACTED} end"),
        ("secret " + "9f" * 32, f"secret {REDACTED}"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA"
            + "x" * 64
            + "\n-----END RSA PRIVATE KEY-----",
            REDACTED,
        ),
    ],
)
def test_secret_formats_are_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected


ORDINARY_CODE = '''
import os
from openai import AsyncOpenAI


class TokenCounter:
    """Counts tokens; max_tokens and the auth header come from settings."""

    def __init__(self, settings: dict[str, str], authorization: str | None = None) -> None:
        self.api_key = os.environ["OPENAI_API_KEY"]
        self.client = AsyncOpenAI(api_key=self.api_key, base_url=settings.get("url"))
        self.headers = {"Authorization": f"Bearer {self.api_key}"}
        self.max_tokens = 1024
        token = next_token(self.tokens)  # the lexer's token, not a credential
        password_hash = hashlib.sha256(password.encode()).hexdigest()

    def run_id(self) -> str:
        # run 3f2a9c0d4b5e6f708192a3b4c5d6e7f8, commit 9fceb02d0ae598e95dc970b74767f19372d61af8
        return "https://github.com/org/repo/blob/9fceb02d0ae598e95dc970b74767f19372d61af8/src/main.py"
'''


def test_ordinary_code_and_prose_pass_through_untouched() -> None:
    assert redact_text(ORDINARY_CODE) == ORDINARY_CODE
    prose = (
        "The bearer of this token is the reviewer agent; set max_tokens=512 and pass the "
        "authorization: header through. The password field must not be empty."
    )
    assert redact_text(prose) == prose
    data = {"turn": 3, "tool": "search", "arguments": {"pattern": "def redact_text\\("}}
    assert redact(data) == data


def test_this_projects_own_source_is_not_redacted() -> None:
    for path in [
        ROOT / "server/agentls/core/events.py",
        ROOT / "server/agentls/core/budget.py",
        ROOT / "server/agentls/core/audit.py",
        ROOT / "server/agentls/cli/__init__.py",
        ROOT / "tests/test_budget.py",
    ]:
        text = path.read_text()
        assert redact_text(text) == text, path


def test_values_of_secret_environment_variables_are_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_GATEWAY_TOKEN", "corp-gateway-7-alpha")
    refresh_env_secrets()
    try:
        assert (
            redact_text("sent with corp-gateway-7-alpha attached")
            == f"sent with {REDACTED} attached"
        )
    finally:
        monkeypatch.delenv("MY_GATEWAY_TOKEN")
        refresh_env_secrets()


# Several processes, crashes and recovery.

_WORKER = textwrap.dedent(
    """
    import json, os, random, sys, time
    from pathlib import Path
    from agentls.core.audit import AuditStore
    from agentls.core.budget import BudgetExceeded, TokenBudgeter
    from agentls.core.events import EventKind, RunEvent, RunStatus, Usage

    ws, worker, calls, go = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    rng = random.Random(worker)
    budget, audit = TokenBudgeter.for_workspace(ws), AuditStore.for_workspace(ws)
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go.exists():
        assert time.monotonic() < deadline, "the test never said go"
        time.sleep(0.001)
    appended, reported, stopped = [], Usage(), False
    for n in range(calls):
        run_id, agent = f"w{worker}-{n // 10}", f"agent{worker % 2}"
        def emit(kind, **kw):
            e = RunEvent(kind=kind, run_id=run_id, agent=agent, goal=f"goal {n}",
                         data={"pid": os.getpid(), "n": n}, **kw)
            audit.append(e)
            appended.append(e.event_id)
        try:
            r = budget.reserve(run_id=run_id, agent=agent, prompt_tokens=rng.randint(10, 200),
                               max_tokens=rng.randint(20, 300), min_output_tokens=16)
        except BudgetExceeded:
            emit(EventKind.BUDGET_EXCEEDED, status=RunStatus.BUDGET_EXCEEDED)
            stopped = True
            break
        usage = Usage(input_tokens=rng.randint(0, r.prompt_tokens),
                      output_tokens=rng.randint(0, r.max_tokens))
        budget.commit(r, usage)
        reported += usage
        emit(EventKind.MODEL_CALL, usage=usage)
        emit(EventKind.TOOL_CALL)
    print(json.dumps({"ids": appended, "reported": reported.model_dump(), "stopped": stopped}))
    """
)


def test_processes_reserve_and_append_concurrently_without_loss(
    tmp_path: Path, backend: str | None
) -> None:
    total_limit, agent_limit = 60_000, 25_000
    with TokenBudgeter.for_workspace(tmp_path) as b:
        b.set_limit(total_limit)
        b.set_limit(agent_limit, agent="agent0")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(tmp_path), str(w), "150", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for p in procs:  # each has opened the stores and waits at the line
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    # The limits were reached, so the processes really competed for the last tokens.
    assert any(r["stopped"] for r in results)

    with AuditStore.for_workspace(tmp_path) as store:
        stored = store.query()
    ids = [i for r in results for i in r["ids"]]
    assert len(ids) == len(set(ids)) > 600
    assert sorted(e.event_id for e in stored) == sorted(ids)  # none lost, none doubled
    assert all(e.data["pid"] in {p.pid for p in procs} for e in stored)  # all intact

    reported = Usage()
    for r in results:
        reported += Usage.model_validate(r["reported"])
    with TokenBudgeter.for_workspace(tmp_path) as b:
        snap = b.snapshot()
    assert snap.usage == reported
    assert snap.used <= total_limit
    assert snap.agents["agent0"].used <= agent_limit
    assert snap.reserved == 0
    # What the audit trail says each call used adds up to the ledger.
    logged = Usage()
    for e in stored:
        if e.kind == EventKind.MODEL_CALL:
            logged += e.usage
    assert logged == reported


_MID_RUN = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from agentls.core.audit import AuditStore
    from agentls.core.budget import TokenBudgeter
    from agentls.core.events import EventKind, RunEvent, Usage

    ws, run_id = Path(sys.argv[1]), sys.argv[2]
    audit, budget = AuditStore.for_workspace(ws), TokenBudgeter.for_workspace(ws)
    common = dict(run_id=run_id, agent="reviewer", goal="review app.py")
    audit.append(RunEvent(kind=EventKind.STARTED, data={"pid": os.getpid()}, **common))
    used = Usage(input_tokens=120, output_tokens=30)
    r = budget.reserve(run_id=run_id, agent="reviewer", prompt_tokens=150, max_tokens=50)
    budget.commit(r, used)
    audit.append(RunEvent(kind=EventKind.MODEL_CALL, usage=used,
                          data={"turn": 1, "call_usage": used.model_dump()}, **common))
    # The second call is in flight when the process dies.
    budget.reserve(run_id=run_id, agent="reviewer", prompt_tokens=400, max_tokens=400)
    print("ready", flush=True)
    time.sleep(120)
    """
)


def _start_mid_run(ws: Path, run_id: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _MID_RUN, str(ws), run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    return proc


def _kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]


def test_kill_9_mid_run_loses_nothing_and_the_run_is_marked_interrupted(
    tmp_path: Path, backend: str | None
) -> None:
    with TokenBudgeter.for_workspace(tmp_path) as b:
        b.set_limit(1500)
    live_budget = TokenBudgeter.for_workspace(tmp_path)  # opened before the crash
    proc = _start_mid_run(tmp_path, "doomed")
    # While the process lives its in-flight reservation counts: 1500 - 150 - 800 = 550 left.
    assert live_budget.snapshot().remaining == 550
    _kill9(proc)

    # Restart.
    store = AuditStore.for_workspace(tmp_path)
    before = store.query(run_id="doomed")
    assert [e.kind for e in before] == [EventKind.STARTED, EventKind.MODEL_CALL]
    assert before[1].usage == Usage(input_tokens=120, output_tokens=30)

    assert store.recover_interrupted() == ["doomed"]
    closing = store.query(run_id="doomed")[-1]
    assert closing.kind == EventKind.INTERRUPTED and closing.status == RunStatus.INTERRUPTED
    assert closing.usage == Usage(input_tokens=120, output_tokens=30)  # the last known usage
    assert str(proc.pid) in (closing.error or "")
    assert closing.execution_record()["status"] == "interrupted"
    assert [r.run_id for r in store.runs()] == ["doomed"]
    # Recovering again (another process starting up) closes nothing twice.
    assert store.recover_interrupted() == []
    with AuditStore.for_workspace(tmp_path) as other:
        assert other.recover_interrupted() == []
    assert len(store.query(run_id="doomed")) == 3
    store.close()

    # The dead process's reservation no longer counts: in a ledger opened afterwards...
    with TokenBudgeter.for_workspace(tmp_path) as fresh:
        snap = fresh.snapshot()
        assert (snap.used, snap.reserved, snap.remaining) == (150, 0, 1350)
    # ...and in one that was open all along, as soon as it would block a call.
    r = live_budget.reserve(run_id="next", agent="reviewer", prompt_tokens=1000, max_tokens=300)
    assert r.max_tokens == 300
    live_budget.close()


def test_a_live_processs_run_is_not_marked_interrupted(tmp_path: Path, backend: str | None) -> None:
    proc = _start_mid_run(tmp_path, "alive")
    try:
        store = AuditStore.for_workspace(tmp_path)
        # Our own open run, and a run that names no process, are left alone too.
        store.append(ev(EventKind.STARTED, "mine", data={"pid": os.getpid()}))
        store.append(ev(EventKind.STARTED, "no-pid"))
        assert store.recover_interrupted() == []
        assert all(not e.is_terminal for e in store.query())
        with TokenBudgeter.for_workspace(tmp_path) as b:
            assert b.snapshot().reserved == 800  # its reservation still holds
    finally:
        _kill9(proc)
    assert store.recover_interrupted() == ["alive"]
    store.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc for start times")
def test_a_reused_pid_does_not_keep_a_dead_run_open(store: AuditStore) -> None:
    # The run was started long before the process that now has this pid (ourselves, here the
    # parent of pytest) began: the pid was reused, the run's own process is gone.
    ppid = os.getppid()
    store.append(
        ev(EventKind.STARTED, "old", time=time.time() - 10 * 365 * 86400, data={"pid": ppid})
    )
    store.append(ev(EventKind.STARTED, "current", data={"pid": ppid}))
    assert store.recover_interrupted() == ["old"]
