"""Telemetry at the front doors: `agentls mcp-server` and `agentls acp` continue the trace their
client passes in a request's `_meta.traceparent`, and a process that exports nothing does not
even load OpenTelemetry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from tests.rig.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.rig.scripted_openai import ScriptedOpenAI, Text

CALC = "def add(a, b):\n    return a + b\n"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    (root / "calc.py").write_text(CALC, encoding="utf-8")
    return root


@pytest.fixture
def scripted() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as s:
        s.responder = lambda body: Text("add adds.")
        yield s


def process_env(scripted: ScriptedOpenAI, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE"))}
    return env | {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": scripted.url, **extra}


def the_run(spans: list[ReceivedSpan]) -> ReceivedSpan:
    (run,) = [s for s in spans if s.name == "invoke_agent explain"]
    return run


async def test_mcp_server_continues_the_trace_of_a_tools_call(
    workspace: Path, scripted: ScriptedOpenAI
) -> None:
    with OtlpReceiver() as collector:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "agentls", "--workspace", str(workspace), "mcp-server"],
            env=process_env(
                scripted, AGENTLS_MODEL="scripted-model", OTEL_EXPORTER_OTLP_ENDPOINT=collector.url
            ),
        )
        async with Client(params) as client:
            result = await client.call_tool(
                "delegate",
                {"agent": "explain", "goal": "what does add do?", "file": "calc.py"},
                meta={"traceparent": TRACEPARENT},
            )
            assert not result.is_error
        spans = collector.spans()
    run = the_run(spans)
    assert run.trace_id == TRACE_ID
    assert run.parent_span_id == CLIENT_SPAN
    assert run.attributes["agentls.front_end"] == "mcp"
    assert {s.trace_id for s in spans} == {TRACE_ID}


def test_acp_continues_the_trace_of_a_prompt(
    workspace: Path, scripted: ScriptedOpenAI, tmp_path: Path
) -> None:
    with OtlpReceiver() as collector:
        env = process_env(scripted, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, HOME=str(tmp_path))
        messages = [
            {"method": "initialize", "params": {"protocolVersion": 1, "clientCapabilities": {}}},
            {"method": "session/new", "params": {"cwd": str(workspace), "mcpServers": []}},
        ]
        replies = acp_session(env, messages, "/explain what does add do?")
        assert replies[-1]["result"]["stopReason"] == "end_turn", replies[-1]
        spans = collector.spans()
    run = the_run(spans)
    assert run.trace_id == TRACE_ID
    assert run.parent_span_id == CLIENT_SPAN
    assert run.attributes["agentls.front_end"] == "acp"


def acp_session(env: dict[str, str], setup: list[dict[str, Any]], text: str) -> list[Any]:
    """Drive `agentls acp` with newline-delimited JSON-RPC; the prompt carries `_meta.traceparent`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentls", "acp", "--model", "scripted-model"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    replies: list[Any] = []
    try:
        for i, message in enumerate(setup, start=1):
            replies.append(_request(proc, i, message))
        session = replies[-1]["result"]["sessionId"]
        prompt = {
            "method": "session/prompt",
            "params": {
                "sessionId": session,
                "prompt": [{"type": "text", "text": text}],
                "_meta": {"traceparent": TRACEPARENT},
            },
        }
        replies.append(_request(proc, len(setup) + 1, prompt))
    finally:
        proc.stdin.close()  # the client leaves: the agent exits (and flushes its telemetry)
        proc.wait(timeout=60)
    return replies


def _request(proc: subprocess.Popen[str], id: int, message: dict[str, Any]) -> Any:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": id, **message}) + "\n")
    proc.stdin.flush()
    for line in proc.stdout:
        reply = json.loads(line)
        if reply.get("id") == id and "method" not in reply:
            return reply
    raise AssertionError(f"agentls acp closed before answering {message['method']}")


STARTUP = """
import sys, tempfile, pathlib
import agentls.cli.serve, agentls.lsp.app
from agentls.core.engine import EngineSettings, build_runtime
build_runtime(pathlib.Path(tempfile.mkdtemp()), EngineSettings())
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""


def loaded_otel_modules(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", STARTUP],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout.strip().replace("'", '"'))
    return loaded


def test_the_language_server_does_not_load_opentelemetry_when_nothing_is_configured() -> None:
    assert loaded_otel_modules() == []
    # The same start-up with an endpoint does load it: the check above can see it.
    assert "opentelemetry.sdk.trace" in loaded_otel_modules(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"
    )
