"""The OpenAI-compatible backend against the scripted server (real SDK, real HTTP), and the choice
of backend from settings."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import httpx2
import pytest
from openai import AsyncOpenAI, DefaultAsyncHttpx2Client
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
)

from agentls.core import llm_local
from agentls.core.events import Usage
from agentls.core.llm import (
    ChatRequest,
    ChatResponse,
    ModelConfigError,
    ModelError,
    ModelSettings,
    ModelStreamError,
    ToolSpec,
)
from agentls.core.llm_openai import OpenAIChatModel
from agentls.core.model_choice import (
    EMBEDDED_FALLBACK_NOTICE,
    NO_MODEL_MESSAGE,
    create_model,
    fallback_notice,
)
from agentls.core.pricing import FREE

MODEL = "scripted-model"
READ_FILE = ToolSpec(
    name="read_file",
    description="Read a file.",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}},
)


@pytest.fixture
async def model(server: ScriptedOpenAI) -> AsyncIterator[OpenAIChatModel]:
    m = OpenAIChatModel(ModelSettings(model=MODEL, base_url=server.url, api_key="sk-test"))
    yield m
    await m.aclose()


def make_model(server: ScriptedOpenAI, **settings: object) -> OpenAIChatModel:
    return OpenAIChatModel(
        ModelSettings(model=MODEL, base_url=server.url, api_key="sk-test", **settings)  # type: ignore[arg-type]
    )


def request(text: str = "Say hello.", **fields: object) -> ChatRequest:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": text},
    ]
    return ChatRequest(messages=messages, max_tokens=64, **fields)  # type: ignore[arg-type]


def one_sentence(message: str) -> None:
    assert message
    assert "\n" not in message
    assert "Traceback" not in message


# --- streaming, text and usage -----------------------------------------------------------------


async def test_streamed_text_is_returned_whole(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(Text("hello there big world"))
    response = await model.complete(request())
    assert response.text == "hello there big world"
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.model == MODEL


async def test_the_deltas_reach_the_callback_in_order_and_make_the_answer(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(Text("one two three four", chunks=4))
    deltas: list[str] = []
    response = await model.complete(request(), deltas.append)
    assert deltas and "".join(deltas) == response.text == "one two three four"


def sse_chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"


def model_behind(answer: Callable[[httpx2.Request], httpx2.Response]) -> OpenAIChatModel:
    """The backend over the real SDK, with `answer` in place of the network."""
    http = DefaultAsyncHttpx2Client(transport=httpx2.MockTransport(answer))
    client = AsyncOpenAI(base_url="http://model.test/v1", api_key="k", http_client=http)
    return OpenAIChatModel(ModelSettings(model=MODEL), client=client)


async def test_a_web_page_instead_of_a_stream_says_to_check_the_base_url() -> None:
    page = "<!doctype html><html><body>Welcome</body></html>"
    model = model_behind(
        lambda request: httpx2.Response(200, headers={"content-type": "text/html"}, text=page)
    )
    with pytest.raises(ModelStreamError) as info:
        await model.complete(request())
    message = str(info.value)
    one_sentence(message)
    assert "text/html" in message
    assert "base URL" in message
    await model.aclose()


async def test_text_is_passed_on_per_network_read_and_never_held_for_the_next() -> None:
    # The network is a gate the test opens: the second read exists only after the first delta.
    second_read = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield sse_chunk("one ") + sse_chunk("two ")  # two chunks in one read: one delta
        await second_read.wait()
        yield sse_chunk("three") + sse_chunk(finish="stop") + b"data: [DONE]\n\n"

    model = model_behind(
        lambda request: httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=body()
        )
    )
    deltas: list[str] = []

    def on_delta(delta: str) -> None:
        deltas.append(delta)
        second_read.set()

    response = await asyncio.wait_for(model.complete(request(), on_delta), 30)
    assert deltas == ["one two ", "three"]
    assert response.text == "one two three"
    await model.aclose()


async def test_provider_usage_is_reported_by_part(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(
        Text("hi", prompt_tokens=120, completion_tokens=30, cached_tokens=100, reasoning_tokens=12)
    )
    response = await model.complete(request())
    assert response.usage == Usage(
        input_tokens=120,
        cached_input_tokens=100,
        output_tokens=30,
        reasoning_tokens=12,
        estimated=False,
    )


async def test_request_asks_for_a_stream_with_usage(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(Text("ok"))
    await model.complete(request(temperature=0.0))
    sent = server.requests[0]
    assert sent["model"] == MODEL
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["max_tokens"] == 64
    assert sent["temperature"] == 0.0
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


async def test_missing_usage_is_estimated_with_a_byte_bound(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(Text("héllo wörld", include_usage=False))
    req = request()
    response = await model.complete(req)
    assert response.usage.estimated is True
    assert response.usage.input_tokens == model.prompt_token_bound(req)
    assert response.usage.output_tokens >= len("héllo wörld".encode())


async def test_tool_call_turn_is_billed_with_the_provider_counts(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(ToolCall("read_file", {"path": "a.py"}))
    response = await model.complete(request(tools=[READ_FILE]))
    assert response.usage.estimated is False
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0


# --- tool calls --------------------------------------------------------------------------------


async def test_tool_call_is_reassembled_from_its_deltas(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    arguments = {"path": "src/deeply/nested/module_name.py", "start_line": 10}
    server.enqueue(ToolCall("read_file", arguments, id="call_abc"))
    response = await model.complete(request(tools=[READ_FILE]))
    assert response.finish_reason == "tool_calls"
    (call,) = response.tool_calls
    assert call.id == "call_abc"
    assert call.name == "read_file"
    assert call.arguments == arguments


async def test_several_tool_calls_keep_their_order(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(
        ToolCalls([ToolCall("read_file", {"path": "a.py"}), ToolCall("search", {"query": "def"})])
    )
    response = await model.complete(request(tools=[READ_FILE]))
    assert [c.name for c in response.tool_calls] == ["read_file", "search"]
    assert [c.arguments for c in response.tool_calls] == [{"path": "a.py"}, {"query": "def"}]
    assert len({c.id for c in response.tool_calls}) == 2


async def test_malformed_tool_arguments_are_kept_raw(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(MalformedToolCall("read_file", '{"path": '))
    response = await model.complete(request(tools=[READ_FILE]))
    (call,) = response.tool_calls
    assert call.raw_arguments == '{"path": '
    assert call.arguments is None


async def test_tools_and_a_forced_tool_are_sent(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(ToolCall("read_file", {"path": "a.py"}))
    await model.complete(request(tools=[READ_FILE], tool_choice="read_file"))
    sent = server.requests[0]
    assert sent["tools"] == [READ_FILE.to_openai()]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "read_file"}}


async def test_json_schema_is_sent_as_response_format(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    server.enqueue(Text('{"a": "b"}'))
    response = await model.complete(request(json_schema=schema))
    assert json.loads(response.text) == {"a": "b"}
    sent = server.requests[0]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == schema


# --- the prompt bound --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["hi", "a much longer message " * 40, "ünïcödé ✓ 漢字 " * 20, json.dumps({"k": ["v"] * 50})],
)
async def test_prompt_bound_is_at_least_what_the_server_bills(
    server: ScriptedOpenAI, model: OpenAIChatModel, text: str
) -> None:
    server.enqueue(Text("ok"))
    req = request(text, tools=[READ_FILE])
    response = await model.complete(req)
    assert not response.usage.estimated
    assert model.prompt_token_bound(req) >= response.usage.input_tokens


# --- retries and errors ------------------------------------------------------------------------


async def test_rate_limit_is_retried_until_it_succeeds(server: ScriptedOpenAI) -> None:
    model = make_model(server, max_retries=3)
    server.enqueue(Status(429, retry_after=0.05), Status(429, retry_after=0.05), Text("finally"))
    started = time.monotonic()
    response = await model.complete(request())
    assert response.text == "finally"
    assert len(server.requests) == 3
    assert time.monotonic() - started >= 0.1  # the server's Retry-After was honoured
    await model.aclose()


async def test_server_error_is_retried_with_backoff(server: ScriptedOpenAI) -> None:
    model = make_model(server, max_retries=2)
    server.enqueue(Status(500), Text("recovered"))
    started = time.monotonic()
    response = await model.complete(request())
    assert response.text == "recovered"
    assert len(server.requests) == 2
    assert time.monotonic() - started >= 0.3  # exponential backoff starts near half a second
    await model.aclose()


async def test_exhausted_rate_limit_retries_give_one_clear_error(server: ScriptedOpenAI) -> None:
    model = make_model(server, max_retries=2)
    server.enqueue(*[Status(429, retry_after=0.01)] * 3)
    with pytest.raises(ModelError) as info:
        await model.complete(request())
    assert type(info.value) is ModelError
    one_sentence(str(info.value))
    assert "429" in str(info.value)
    assert len(server.requests) == 3
    await model.aclose()


async def test_exhausted_server_error_retries_give_one_clear_error(server: ScriptedOpenAI) -> None:
    model = make_model(server, max_retries=1)
    server.enqueue(*[Status(500, "the GPU caught fire", retry_after=0.01)] * 2)
    with pytest.raises(ModelError) as info:
        await model.complete(request())
    one_sentence(str(info.value))
    assert "500" in str(info.value)
    assert "the GPU caught fire" in str(info.value)
    assert len(server.requests) == 2
    await model.aclose()


async def test_client_error_is_not_retried(server: ScriptedOpenAI) -> None:
    model = make_model(server, max_retries=3)
    server.enqueue(Status(400, "max_tokens is too large"))
    with pytest.raises(ModelError) as info:
        await model.complete(request())
    assert "max_tokens is too large" in str(info.value)
    assert "retries" not in str(info.value)
    assert len(server.requests) == 1
    await model.aclose()


async def test_server_that_never_answers_gives_a_timeout_error(server: ScriptedOpenAI) -> None:
    model = make_model(server, timeout=0.3, max_retries=0)
    server.enqueue(Hang(60))
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        await model.complete(request())
    # The 0.3 s timeout ended it, not the 60 s hang (generous bound: the machine may be loaded).
    assert time.monotonic() - started < 30
    one_sentence(str(info.value))
    assert "timeout" in str(info.value).lower()
    await model.aclose()


async def test_answer_stalling_midway_gives_a_stream_error(server: ScriptedOpenAI) -> None:
    model = make_model(server, timeout=0.3, max_retries=0)
    server.enqueue(Text("slow words arrive here", chunk_delay=2.0))
    with pytest.raises(ModelStreamError) as info:
        await model.complete(request())
    one_sentence(str(info.value))
    await model.aclose()


@pytest.mark.parametrize(
    "reply",
    [
        CutStream(Text("a partial answer that never ends"), after_chunks=2),
        CutStream(ToolCall("read_file", {"path": "some/long/path/to/a/file.py"}), after_chunks=2),
    ],
)
async def test_cut_stream_is_a_stream_error_never_a_short_answer(
    server: ScriptedOpenAI, reply: CutStream
) -> None:
    model = make_model(server, max_retries=2)
    server.enqueue(reply)
    deltas: list[str] = []
    with pytest.raises(ModelStreamError) as info:
        await model.complete(request(tools=[READ_FILE]), deltas.append)
    one_sentence(str(info.value))
    assert len(server.requests) == 1  # a started answer is not silently replayed
    await model.aclose()


async def test_stream_that_stops_before_its_finish_is_a_stream_error(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    # A proxy that gives up ends the body properly, with no finish chunk and no [DONE].
    server.enqueue(CutStream(Text("a partial answer that never ends"), after_chunks=2, clean=True))
    deltas: list[str] = []
    with pytest.raises(ModelStreamError) as info:
        await model.complete(request(), deltas.append)
    one_sentence(str(info.value))
    assert "before finishing" in str(info.value)
    assert "".join(deltas) == "a partial "


@pytest.mark.parametrize(
    ("data", "event"),
    [
        ('{"error": {"message": "The engine is overloaded.", "type": "server_error"}}', None),
        ('{"error": {"message": "The engine is overloaded."}}', "error"),
        ('{"object": "error", "message": "The engine is overloaded.", "code": 500}', None),
        ("The engine is overloaded.", "error"),
        ('"The engine is overloaded."', "error"),
    ],
)
async def test_an_error_event_mid_stream_is_a_stream_error_with_the_servers_message(
    server: ScriptedOpenAI, model: OpenAIChatModel, data: str, event: str | None
) -> None:
    server.enqueue(StreamEvent(Text("one two three four"), data, after_chunks=2, event=event))
    deltas: list[str] = []
    with pytest.raises(ModelStreamError) as info:
        await model.complete(request(), deltas.append)
    message = str(info.value)
    one_sentence(message)
    assert "The engine is overloaded." in message
    assert server.url in message
    assert "".join(deltas) == "one two "  # nothing after the error is used
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ('{"choices": [{"index": 0, "delta": {"content": "x"', "not JSON"),
        ('{"choices": [{"index": 0, "delta": {"content": 42}}]}', "choices[0].delta.content"),
        ('{"choices": "none"}', "'choices'"),
    ],
)
async def test_a_malformed_chunk_is_a_stream_error_naming_the_problem(
    server: ScriptedOpenAI, model: OpenAIChatModel, data: str, named: str
) -> None:
    server.enqueue(StreamEvent(Text("one two three"), data, after_chunks=1))
    with pytest.raises(ModelStreamError) as info:
        await model.complete(request())
    message = str(info.value)
    one_sentence(message)
    assert "malformed chunk" in message
    assert named in message


async def test_keep_alive_and_unknown_events_are_ignored(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(
        StreamEvent(Text("one two three"), "", after_chunks=1),
        StreamEvent(Text("one two three"), '{"type": "ping"}', after_chunks=2, event="ping"),
    )
    for _ in range(2):
        response = await model.complete(request())
        assert response.text == "one two three"
        assert response.finish_reason == "stop"


async def test_cancelling_a_call_mid_stream_frees_it_and_the_next_call_works(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    server.enqueue(Text("slow words " * 20, chunk_delay=5.0), Text("next"))
    first_delta = asyncio.Event()
    call = asyncio.create_task(model.complete(request(), lambda _: first_delta.set()))
    await asyncio.wait_for(first_delta.wait(), 30)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (await model.complete(request())).text == "next"


async def test_the_api_key_goes_to_the_server_as_a_bearer_token() -> None:
    with ScriptedOpenAI(require_key="sk-right") as server:
        model = OpenAIChatModel(
            ModelSettings(model=MODEL, base_url=server.url, api_key="sk-right", max_retries=0)
        )
        server.enqueue(Text("welcome"))
        assert (await model.complete(request())).text == "welcome"
        await model.aclose()


async def test_consecutive_calls_share_one_connection(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    # After [DONE] the rest of the body is read, so HTTP/1.1 keeps the connection for the next call.
    server.enqueue(Text("one"), Text("two"), Text("three"))
    for _ in range(3):
        await model.complete(request())
    assert len(server.peers) == 3
    assert len(set(server.peers)) == 1


async def test_rejected_key_is_a_config_error_saying_what_to_do() -> None:
    with ScriptedOpenAI(require_key="sk-right") as server:
        model = OpenAIChatModel(
            ModelSettings(model=MODEL, base_url=server.url, api_key="sk-wrong", max_retries=3)
        )
        with pytest.raises(ModelConfigError) as info:
            await model.complete(request())
        message = str(info.value)
        one_sentence(message)
        assert "401" in message
        assert "OPENAI_API_KEY" in message
        assert len(server.requests) == 1
        await model.aclose()


async def test_unknown_model_is_a_config_error_saying_what_to_do(server: ScriptedOpenAI) -> None:
    model = OpenAIChatModel(ModelSettings(model="gpt-nope", base_url=server.url, api_key="k"))
    with pytest.raises(ModelConfigError) as info:
        await model.complete(request())
    message = str(info.value)
    one_sentence(message)
    assert "gpt-nope" in message
    assert "model" in message
    await model.aclose()


async def test_unreachable_server_is_a_clear_error() -> None:
    with ScriptedOpenAI() as server:
        url = server.url
    model = OpenAIChatModel(ModelSettings(model=MODEL, base_url=url, api_key="k", max_retries=0))
    with pytest.raises(ModelError) as info:
        await model.complete(request())
    one_sentence(str(info.value))
    assert url in str(info.value)
    await model.aclose()


# --- choosing the backend ----------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


class FakeEmbedded:
    """Stands in for the loaded SmolLM2 so choosing a backend loads no model."""

    name = "embedded (fake)"
    own_price = FREE

    def prompt_token_bound(self, request: ChatRequest) -> int:
        return 0

    async def complete(self, request: ChatRequest, on_delta: object = None) -> ChatResponse:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


@pytest.fixture
def embedded_installed(clean_env: pytest.MonkeyPatch) -> FakeEmbedded:
    fake = FakeEmbedded()
    clean_env.setattr(llm_local, "embedded_available", lambda: None)
    clean_env.setattr(llm_local.EmbeddedChatModel, "shared", classmethod(lambda cls: fake))
    return fake


@pytest.fixture
def embedded_missing(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(llm_local, "embedded_available", lambda: "llama-cpp-python is not installed")


async def test_api_key_setting_picks_the_openai_backend(embedded_installed: FakeEmbedded) -> None:
    model = create_model(ModelSettings(api_key="sk-test"))
    assert isinstance(model, OpenAIChatModel)
    await model.aclose()


async def test_base_url_setting_picks_the_openai_backend(embedded_installed: FakeEmbedded) -> None:
    model = create_model(ModelSettings(base_url="http://127.0.0.1:9/v1", model="llama3"))
    assert isinstance(model, OpenAIChatModel)
    assert model.name == "llama3"
    await model.aclose()


async def test_openai_api_key_environment_picks_the_openai_backend(
    embedded_installed: FakeEmbedded, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("OPENAI_API_KEY", "sk-from-env")
    model = create_model(ModelSettings())
    assert isinstance(model, OpenAIChatModel)
    await model.aclose()


async def test_openai_base_url_environment_reaches_that_server(
    server: ScriptedOpenAI, embedded_installed: FakeEmbedded, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("OPENAI_BASE_URL", server.url)
    model = create_model(ModelSettings(model=MODEL))
    assert isinstance(model, OpenAIChatModel)
    server.enqueue(Text("from the env server"))
    assert (await model.complete(request())).text == "from the env server"
    await model.aclose()


def test_nothing_configured_picks_the_embedded_model_and_its_runs_say_so(
    embedded_installed: FakeEmbedded,
) -> None:
    model = create_model(ModelSettings())
    assert fallback_notice(model) == EMBEDDED_FALLBACK_NOTICE
    assert model.name == embedded_installed.name


def test_model_named_embedded_is_not_a_fallback(embedded_installed: FakeEmbedded) -> None:
    assert fallback_notice(create_model(ModelSettings(model="embedded"))) is None


def test_model_named_embedded_wins_over_a_key(embedded_installed: FakeEmbedded) -> None:
    assert create_model(ModelSettings(model="embedded", api_key="sk-test")) is embedded_installed


def test_nothing_available_gives_the_one_sentence_no_model_message(
    embedded_missing: None,
) -> None:
    with pytest.raises(ModelConfigError) as info:
        create_model(ModelSettings())
    assert str(info.value) == NO_MODEL_MESSAGE
    assert "OPENAI_API_KEY" in NO_MODEL_MESSAGE


def test_asking_for_a_missing_embedded_model_says_what_is_missing(embedded_missing: None) -> None:
    with pytest.raises(ModelConfigError) as info:
        create_model(ModelSettings(model="embedded"))
    assert "llama-cpp-python" in str(info.value)
    assert NO_MODEL_MESSAGE in str(info.value)


async def test_an_estimate_never_claims_more_output_than_max_tokens(
    server: ScriptedOpenAI, model: OpenAIChatModel
) -> None:
    # A server without usage reports (llama.cpp's, some proxies) stops at max_tokens tokens, so the
    # byte count of a long answer must not push the estimate past what the call reserved.
    long_answer = "word " * 400
    server.enqueue(Text(long_answer, include_usage=False))
    req = request()
    response = await model.complete(req)
    assert response.usage.estimated is True
    assert response.usage.output_tokens == req.max_tokens
    assert response.usage.total <= model.prompt_token_bound(req) + req.max_tokens
