"""The scripted OpenAI-compatible server, driven by the real ``openai`` SDK over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)
from tests.rig.eventually import aeventually
from tests.rig.scripted_openai import (
    CutStream,
    Hang,
    MalformedToolCall,
    ScriptedOpenAI,
    Status,
    StreamEvent,
    Text,
    ToolCall,
    ToolCalls,
    echo_last_user,
    reply_from_json,
    turns,
)

ROOT = Path(__file__).resolve().parents[1]  # the CLI mode runs as `-m tests.rig...` from here

MODEL = "scripted-model"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi there"}]


@pytest.fixture
async def client(server: ScriptedOpenAI) -> AsyncIterator[AsyncOpenAI]:
    c = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
    yield c
    await c.close()


async def collect_stream(
    client: AsyncOpenAI, include_usage: bool = False
) -> list[ChatCompletionChunk]:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=USER,
        stream=True,
        stream_options={"include_usage": True} if include_usage else openai.omit,
    )
    return [chunk async for chunk in stream]


def streamed_calls(chunks: list[ChatCompletionChunk]) -> list[tuple[str, str, str]]:
    """(id, name, raw arguments) of each tool call, reassembled from deltas by index."""
    calls: dict[int, tuple[str, str, str]] = {}
    for chunk in chunks:
        deltas = chunk.choices[0].delta.tool_calls if chunk.choices else None
        for delta in deltas or []:
            call_id, name, arguments = calls.get(delta.index, ("", "", ""))
            function = delta.function
            calls[delta.index] = (
                call_id + (delta.id or ""),
                name + (function.name or "" if function else ""),
                arguments + (function.arguments or "" if function else ""),
            )
    return [calls[index] for index in sorted(calls)]


def function_calls(message: ChatCompletionMessage) -> list[tuple[str, str]]:
    """(name, raw arguments) of each tool call in a non-streamed message."""
    calls = []
    for call in message.tool_calls or []:
        assert isinstance(call, ChatCompletionMessageFunctionToolCall)
        calls.append((call.function.name, call.function.arguments))
    return calls


async def test_streamed_text_reassembles_with_usage_in_last_chunk(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    server.enqueue(Text("hello there big world", cached_tokens=3, reasoning_tokens=2))
    chunks = await collect_stream(client, include_usage=True)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "hello there big world"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}

    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    expected_prompt = -(-len(json.dumps(USER).encode()) // 4)
    assert last.usage.prompt_tokens == expected_prompt
    assert last.usage.completion_tokens == -(-len(b"hello there big world") // 4)
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 3
    assert last.usage.completion_tokens_details is not None
    assert last.usage.completion_tokens_details.reasoning_tokens == 2
    assert server.requests[0]["stream"] is True


async def test_stream_without_include_usage_sends_no_usage(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    server.enqueue(Text("abcdefgh", chunks=3), Text("x", include_usage=False))
    chunks = await collect_stream(client)
    assert [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content] == [
        "abc",
        "def",
        "gh",
    ]
    assert all(c.usage is None and c.choices for c in chunks)

    chunks = await collect_stream(client, include_usage=True)
    assert all(c.usage is None and c.choices for c in chunks)


async def test_non_stream_text(server: ScriptedOpenAI, client: AsyncOpenAI) -> None:
    server.enqueue(Text("a plain answer", prompt_tokens=100, completion_tokens=7))
    response = await client.chat.completions.create(model=MODEL, messages=USER)
    assert response.object == "chat.completion"
    assert response.choices[0].message.content == "a plain answer"
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (100, 7)

    # The queue is empty: the default responder answers "ok".
    again = await client.chat.completions.create(model=MODEL, messages=USER)
    assert again.choices[0].message.content == "ok"
    assert len(server.requests) == 2


async def test_prompt_tokens_count_tools_too(server: ScriptedOpenAI, client: AsyncOpenAI) -> None:
    tools: list[Any] = [
        {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
    ]
    response = await client.chat.completions.create(model=MODEL, messages=USER, tools=tools)
    assert response.usage is not None
    assert response.usage.prompt_tokens == -(-len(json.dumps(USER + tools).encode()) // 4)


async def test_streamed_tool_call_reassembles(server: ScriptedOpenAI, client: AsyncOpenAI) -> None:
    arguments = {"path": "src/some/rather/long/module_name.py", "start": 10}
    server.enqueue(ToolCall("read_file", arguments, id="call_abc"))
    chunks = await collect_stream(client)

    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) > 2, "arguments should arrive split across several deltas"
    assert deltas[0].id == "call_abc"
    assert all(d.index == 0 for d in deltas)
    assert all(d.id is None for d in deltas[1:])
    [(call_id, name, raw)] = streamed_calls(chunks)
    assert (call_id, name, json.loads(raw)) == ("call_abc", "read_file", arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_several_tool_calls_stream_and_non_stream(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    calls = ToolCalls([ToolCall("a", {"x": 1}), ToolCall("b", '{"y": 2}')], content="Let me look.")
    server.enqueue(calls, calls)

    chunks = await collect_stream(client)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Let me look."
    (id_a, name_a, raw_a), (id_b, name_b, raw_b) = streamed_calls(chunks)
    assert (name_a, json.loads(raw_a), name_b, json.loads(raw_b)) == ("a", {"x": 1}, "b", {"y": 2})
    assert id_a and id_b and id_a != id_b

    response = await client.chat.completions.create(model=MODEL, messages=USER)
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert message.content == "Let me look."
    assert [(name, json.loads(arguments)) for name, arguments in function_calls(message)] == [
        ("a", {"x": 1}),
        ("b", {"y": 2}),
    ]


async def test_malformed_tool_call_arguments_are_unparseable(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    server.enqueue(MalformedToolCall("read_file"), MalformedToolCall("write_file", "{oops"))
    chunks = await collect_stream(client)
    [(_, name, raw)] = streamed_calls(chunks)
    assert (name, raw) == ("read_file", '{"path": ')
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)

    response = await client.chat.completions.create(model=MODEL, messages=USER)
    assert function_calls(response.choices[0].message) == [("write_file", "{oops")]


async def test_status_errors_raise_sdk_errors(server: ScriptedOpenAI, client: AsyncOpenAI) -> None:
    server.enqueue(Status(429, retry_after=2), Status(500, "boom"), Status(400, "bad"))
    with pytest.raises(openai.RateLimitError) as rate:
        await client.chat.completions.create(model=MODEL, messages=USER)
    assert rate.value.response.headers["retry-after"] == "2"
    assert rate.value.code == "rate_limit_exceeded"

    with pytest.raises(openai.InternalServerError) as internal:
        await collect_stream(client)
    assert internal.value.status_code == 500
    assert internal.value.message.endswith("boom")

    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, messages=USER)


async def test_sdk_retries_a_rate_limit_then_succeeds(server: ScriptedOpenAI) -> None:
    server.enqueue(Status(429, retry_after=0.05), Text("after retry"))
    client = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=2)
    try:
        response = await client.chat.completions.create(model=MODEL, messages=USER)
    finally:
        await client.close()
    assert response.choices[0].message.content == "after retry"
    assert len(server.requests) == 2


async def test_hang_triggers_client_timeout_without_blocking_others(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    server.enqueue(Hang(30))
    hung = asyncio.create_task(
        client.chat.completions.create(model=MODEL, messages=USER, timeout=0.5)
    )
    await aeventually(
        lambda: server.pending == 0
    )  # the hang took its reply; the next gets the default
    other = await client.chat.completions.create(model=MODEL, messages=USER)
    assert other.choices[0].message.content == "ok"
    assert not hung.done(), "the hang must not hold up other requests"
    with pytest.raises(openai.APITimeoutError):
        await hung  # after its 0.5 s timeout, long before the hang's 30 s


async def test_hang_then_reply(server: ScriptedOpenAI, client: AsyncOpenAI) -> None:
    server.enqueue(Hang(0.2, Text("late")), Hang(0.05))
    started = time.monotonic()
    response = await client.chat.completions.create(model=MODEL, messages=USER)
    assert response.choices[0].message.content == "late"
    assert time.monotonic() - started >= 0.2
    with pytest.raises(openai.APIStatusError) as gateway:
        await client.chat.completions.create(model=MODEL, messages=USER)
    assert gateway.value.status_code == 504


async def test_cut_stream_raises_while_iterating(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    server.enqueue(CutStream(Text("one two three four five"), after_chunks=2))
    stream = await client.chat.completions.create(model=MODEL, messages=USER, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "one two "

    # The server is still fine afterwards.
    response = await client.chat.completions.create(model=MODEL, messages=USER)
    assert response.choices[0].message.content == "ok"


async def test_cut_tool_call_stream_and_cut_non_stream(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    server.enqueue(
        CutStream(ToolCall("read_file", {"path": "a/long/path/to/somewhere.py"}), 1),
        CutStream(Text("never whole")),
    )
    with pytest.raises(openai.APIConnectionError):
        await collect_stream(client)
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model=MODEL, messages=USER)


async def test_clean_cut_stream_ends_without_a_finish_chunk(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    server.enqueue(CutStream(Text("one two three four"), after_chunks=2, clean=True))
    chunks = await collect_stream(client)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two "
    assert all(c.choices[0].finish_reason is None for c in chunks)


async def test_stream_event_error_reaches_the_sdk_mid_stream(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    server.enqueue(StreamEvent(Text("one two three"), '{"error": {"message": "melted"}}', 1))
    stream = await client.chat.completions.create(model=MODEL, messages=USER, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError, match="melted"):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "one "


async def test_stream_event_is_sent_verbatim_with_its_name(server: ScriptedOpenAI) -> None:
    server.enqueue(StreamEvent(Text("one two"), "not json", after_chunks=1, event="oops"))
    body = {"model": MODEL, "messages": USER, "stream": True}
    async with httpx2.AsyncClient() as http:
        response = await http.post(f"{server.url}/chat/completions", json=body)
    events = response.text.split("\n\n")
    assert events[2] == "event: oops\ndata: not json"
    assert events[-2] == "data: [DONE]"  # the reply goes on to its end


async def test_unknown_model_is_not_found(server: ScriptedOpenAI, client: AsyncOpenAI) -> None:
    server.enqueue(Text("kept for later"))
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(model="gpt-nope", messages=USER)
    assert missing.value.code == "model_not_found"
    assert "The model `gpt-nope` does not exist" in missing.value.message
    models = await client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    # A built-in refusal does not consume the script.
    response = await client.chat.completions.create(model=MODEL, messages=USER)
    assert response.choices[0].message.content == "kept for later"


async def test_wrong_or_missing_key_is_unauthorized() -> None:
    with ScriptedOpenAI(require_key="sk-test", models=("m1", "m2")) as server:
        wrong = AsyncOpenAI(base_url=server.url, api_key="sk-wrong", max_retries=0)
        right = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
        try:
            with pytest.raises(openai.AuthenticationError) as denied:
                await wrong.chat.completions.create(model="m1", messages=USER)
            assert denied.value.code == "invalid_api_key"
            with pytest.raises(openai.AuthenticationError):
                await wrong.models.list()
            response = await right.chat.completions.create(model="m2", messages=USER)
            assert response.model == "m2"
        finally:
            await wrong.close()
            await right.close()
        request = urllib.request.Request(
            server.url + "/chat/completions",
            data=json.dumps({"model": "m1", "messages": USER}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as no_key:
            await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
        with no_key.value:
            assert no_key.value.code == 401


async def test_concurrent_requests_overlap_their_latency() -> None:
    with ScriptedOpenAI(latency=0.2) as server:
        client = AsyncOpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
        try:

            async def one(i: int) -> str:
                stream = await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"request {i}"}],
                    stream=True,
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream])

            server.responder = echo_last_user()
            started = time.monotonic()
            answers = await asyncio.gather(*(one(i) for i in range(32)))
            elapsed = time.monotonic() - started
        finally:
            await client.close()
    assert sorted(answers) == sorted(f"request {i}" for i in range(32))
    assert elapsed >= 0.2
    # One after another they would take 6.4 s; overlapping, one latency (bound left generous).
    assert elapsed < 32 * 0.2 / 2, f"32 requests with 0.2 s latency took {elapsed:.2f} s"


async def test_turns_responder_drives_an_agent_loop(
    server: ScriptedOpenAI, client: AsyncOpenAI
) -> None:
    server.responder = turns(2, arguments={"path": "a.py"}, final="all done")
    messages: list[Any] = list(USER)
    for _ in range(5):
        response = await client.chat.completions.create(model=MODEL, messages=messages)
        message = response.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            assert function_calls(message) == [("read_file", '{"path": "a.py"}')]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "text"})
    assert message.content == "all done"
    assert len(server.requests) == 3


def test_responder_errors_become_500(server: ScriptedOpenAI) -> None:
    def broken(body: dict[str, Any]) -> Text:
        raise KeyError("nope")

    server.responder = broken
    request = urllib.request.Request(
        server.url + "/chat/completions",
        data=json.dumps({"model": MODEL, "messages": USER}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(request, timeout=5)
    with failed.value:
        assert failed.value.code == 500
        assert "KeyError" in json.loads(failed.value.read())["error"]["message"]


def test_reply_from_json_forms() -> None:
    assert reply_from_json({"text": "hi", "chunks": 2}) == Text("hi", chunks=2)
    assert reply_from_json("plain") == Text("plain")
    assert reply_from_json({"tool_call": {"name": "f", "arguments": {"a": 1}}}) == ToolCall(
        "f", {"a": 1}
    )
    assert reply_from_json({"tool_calls": [{"name": "f", "arguments": "{}"}]}) == ToolCalls(
        [ToolCall("f", "{}")]
    )
    assert reply_from_json({"malformed_tool_call": {"name": "f"}}) == MalformedToolCall("f")
    assert reply_from_json({"status": 429, "retry_after": 1}) == Status(429, retry_after=1)
    assert reply_from_json({"hang": 2, "then": {"text": "x"}}) == Hang(2.0, Text("x"))
    assert reply_from_json({"cut_stream": {"text": "x y"}, "after_chunks": 1}) == CutStream(
        Text("x y"), 1
    )
    assert reply_from_json({"cut_stream": "x", "clean": True}) == CutStream(Text("x"), clean=True)
    assert reply_from_json(
        {"stream_event": "x", "data": "{}", "event": "error", "after_chunks": 0}
    ) == StreamEvent(Text("x"), "{}", 0, "error")
    for bad in (
        {"text": "x", "colour": 1},
        {"nothing": 1},
        3,
        {"cut_stream": {"status": 500}},
        {"stream_event": "x"},
    ):
        with pytest.raises((ValueError, TypeError)):
            reply_from_json(bad)


def test_stop_is_prompt_even_with_a_hanging_request() -> None:
    server = ScriptedOpenAI().start()
    server.enqueue(Hang(60))
    request = urllib.request.Request(
        server.url + "/chat/completions",
        data=json.dumps({"model": MODEL, "messages": USER}).encode(),
        headers={"Content-Type": "application/json"},
    )
    outcome: list[int] = []

    def call() -> None:
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as exc:
            with exc:
                outcome.append(exc.code)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 30
    while server.pending:  # the request took the hang
        assert time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    # Well before the hang's 60 s (the bound is generous: the machine may be loaded).
    assert time.monotonic() - started < 30
    caller.join(30)
    assert outcome == [503]
    server.stop()  # twice is fine


@contextlib.contextmanager
def _cli(*args: str, stdin: int = subprocess.DEVNULL) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [sys.executable, "-m", "tests.rig.scripted_openai", *args],
        cwd=ROOT,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def _read_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("URL http://127.0.0.1:"), (line, proc.stderr and proc.stderr.read())
    return line.split(" ", 1)[1].strip()


def _http_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def test_cli_prints_url_serves_script_and_stops_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [{"text": "scripted first"}, {"tool_call": {"name": "f", "arguments": {"a": 1}}}]
        )
    )
    with _cli("--text", "later", "--script", str(script), "--latency", "0.01") as proc:
        url = await asyncio.to_thread(_read_url, proc)
        assert url.endswith("/v1")
        client = AsyncOpenAI(base_url=url, api_key="sk-test", max_retries=0)
        try:
            first = await client.chat.completions.create(model=MODEL, messages=USER)
            assert first.choices[0].message.content == "scripted first"
            second = await client.chat.completions.create(model=MODEL, messages=USER)
            assert second.choices[0].message.tool_calls is not None
            third = await client.chat.completions.create(model=MODEL, messages=USER)
            assert third.choices[0].message.content == "later"

            base = url.removesuffix("/v1")
            queued = await asyncio.to_thread(
                _http_json, base + "/_script", [{"text": "posted"}, {"status": 503}]
            )
            assert queued["queued"] == 2
            posted = await client.chat.completions.create(model=MODEL, messages=USER)
            assert posted.choices[0].message.content == "posted"
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model=MODEL, messages=USER)
        finally:
            await client.close()
        recorded = await asyncio.to_thread(_http_json, base + "/_requests")
        assert len(recorded) == 5 and recorded[0]["messages"] == USER

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
        assert proc.stdout is not None and proc.stdout.read() == ""  # only the URL line


def test_cli_exits_on_stdin_eof_when_asked() -> None:
    with _cli("--exit-on-stdin-eof", stdin=subprocess.PIPE) as proc:
        url = _read_url(proc)
        assert _http_json(url + "/models")["data"][0]["id"] == MODEL
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(10) == 0
