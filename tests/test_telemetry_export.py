"""Telemetry end to end: real `agentls` processes export over OTLP/HTTP to a receiver on 127.0.0.1
(tests/rig/otlp_receiver.py decodes what a collector would get), and a collector that is down,
refusing or never answering changes nothing about the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.rig.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.rig.scripted_openai import ScriptedOpenAI, Text
from tests.test_orchestration import delegate_down

CALC = "def add(a, b):\n    return a + b\n"
# Far more than any run here takes: a process that waited on a stuck collector would hit it.
PROCESS_TIMEOUT = 90
WARNING = "agentls telemetry:"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "calc.py").write_text(CALC, encoding="utf-8")
    return root


def agentls(
    workspace: Path, scripted: ScriptedOpenAI, otel: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE"))}
    env.update(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=scripted.url, **otel)
    return subprocess.run(
        [sys.executable, "-m", "agentls", "--workspace", str(workspace), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def run_agent(
    workspace: Path, scripted: ScriptedOpenAI, otel: dict[str, str], agent: str, goal: str
) -> subprocess.CompletedProcess[str]:
    return agentls(
        workspace,
        scripted,
        otel,
        "run",
        agent,
        "--goal",
        goal,
        "--file",
        str(workspace / "calc.py"),
        "--model",
        "scripted-model",
        "--json",
    )


def process_of(span: ReceivedSpan) -> Any:
    return span.resource["service.instance.id"]


def test_an_orchestrator_and_the_children_it_delegates_to_are_one_trace(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.responder = delegate_down
    with OtlpReceiver() as collector:
        done = run_agent(
            workspace,
            scripted,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url},
            "orchestrator",
            "level 0",
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "finished"
        spans = collector.spans()
        metrics = collector.metric_names()
    runs = [s for s in spans if s.name == "invoke_agent orchestrator"]
    assert sorted(s.attributes["agentls.run.depth"] for s in runs) == [0, 1, 2]
    assert len({s.trace_id for s in spans}) == 1  # the whole tree is one trace
    assert len({process_of(s) for s in spans}) == 3  # exported by three processes
    assert {s.resource["service.name"] for s in spans} == {"agentls"}
    by_id = {s.span_id: s for s in spans}
    top, child, grandchild = sorted(runs, key=lambda s: s.attributes["agentls.run.depth"])
    assert top.parent_span_id == ""
    for run, above in ((child, top), (grandchild, child)):
        # A child's run hangs under the parent's execute_tool span of the call that started it.
        call = by_id[run.parent_span_id]
        assert call.name == "execute_tool mcp__agentls__delegate"
        assert call.attributes["gen_ai.tool.type"] == "extension"
        assert process_of(call) == process_of(above) != process_of(run)
        assert by_id[call.parent_span_id] is above
        assert run.attributes["agentls.run.parent_id"] == above.attributes["gen_ai.conversation.id"]
        assert run.attributes["agentls.front_end"] == "mcp"
    assert top.attributes["agentls.front_end"] == "cli"
    # What the top run has left counts every call of the tree, in every process (the ledger's).
    tree = sum(
        s.attributes["gen_ai.usage.input_tokens"] + s.attributes["gen_ai.usage.output_tokens"]
        for s in spans
        if s.name.startswith("chat ")
    )
    assert (
        top.attributes["agentls.budget.remaining"] == top.attributes["agentls.budget.limit"] - tree
    )
    chats = [s for s in spans if s.name == "chat scripted-model"]
    assert len(chats) == len(scripted.requests)
    assert all(by_id[s.parent_span_id].name == "invoke_agent orchestrator" for s in chats)
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= metrics
    assert WARNING not in done.stderr


def test_audit_events_go_out_as_log_records_when_asked(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Text("add adds."))
    with OtlpReceiver() as collector:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_LOGS_EXPORTER": "otlp"}
        done = run_agent(workspace, scripted, otel, "explain", "what does add do?")
        assert done.returncode == 0, done.stderr
        bodies = collector.log_bodies()
    assert bodies == ["explain started", "explain model_call", "explain output", "explain finished"]


def test_nothing_is_exported_without_an_endpoint(workspace: Path, scripted: ScriptedOpenAI) -> None:
    scripted.enqueue(Text("add adds."))
    with OtlpReceiver() as collector:
        # A receiver at the SDK's default address would get nothing either: no variable is set.
        done = run_agent(workspace, scripted, {"OTEL_SERVICE_NAME": "x"}, "explain", "what?")
        assert done.returncode == 0, done.stderr
        assert collector.posts == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_run_unaffected(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "finished" and result["text"] == "add adds."
    assert done.stderr.count(WARNING) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_a_collector_that_is_down_is_one_warning(workspace: Path, scripted: ScriptedOpenAI) -> None:
    scripted.enqueue(Text("add adds."))
    url = f"http://127.0.0.1:{free_port()}"
    done = run_agent(workspace, scripted, {"OTEL_EXPORTER_OTLP_ENDPOINT": url}, "explain", "what?")
    assert_run_unaffected(done)
    assert url in done.stderr


def test_a_collector_answering_500_is_one_warning(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Text("add adds."))
    with OtlpReceiver("error") as collector:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        done = run_agent(workspace, scripted, otel, "explain", "what?")
        assert collector.posts >= 2  # spans and metrics were both tried
    assert_run_unaffected(done)


def test_a_collector_that_never_answers_does_not_hold_the_exit(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    scripted.enqueue(Text("add adds."))
    with OtlpReceiver("hang") as collector:
        # Each export would wait a minute: only the exit bound lets the process end in time.
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_EXPORTER_OTLP_TIMEOUT": "600"}
        done = run_agent(workspace, scripted, otel, "explain", "what?")
        assert collector.posts >= 1
    assert_run_unaffected(done)
    assert "did not take the last data" in done.stderr
