"""Putting a streamed Chat Completions answer together from its JSON chunks (core/chat_stream.py).

The chunks here are the shapes OpenAI-compatible servers send; the whole path over real HTTP is
specified in tests/test_llm_openai.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentls.core.chat_stream import ChunkError, StreamedAnswer, StreamErrorEvent
from agentls.core.events import Usage


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": fields, "finish_reason": finish, "logprobs": None}],
        "usage": None,
    }


def call_delta(index: int, **fields: Any) -> dict[str, Any]:
    return delta(tool_calls=[{"index": index, **fields}])


def answer_of(*chunks: Any) -> StreamedAnswer:
    answer = StreamedAnswer()
    for chunk in chunks:
        answer.add(chunk)
    return answer


def test_text_deltas_join_in_order() -> None:
    answer = answer_of(
        delta(role="assistant", content=""),
        delta(content="Hello"),
        delta(content=", "),
        delta(content="wörld ✓"),
        delta("stop"),
    )
    assert answer.text == "Hello, wörld ✓"
    assert answer.finish_reason == "stop"
    assert answer.tool_calls() == []


def test_each_flush_passes_on_the_text_added_since_the_last_as_one_delta() -> None:
    seen: list[str] = []
    answer = StreamedAnswer(seen.append)
    answer.add(delta(role="assistant", content=""))
    answer.flush()
    assert seen == []  # no text yet: no empty delta
    answer.add(delta(content="Hello"))
    answer.add(delta(content=", "))
    answer.flush()
    answer.flush()
    answer.add(delta(content="wörld ✓"))
    answer.add(call_delta(0, id="c", function={"name": "f", "arguments": "{}"}))
    answer.flush()
    assert seen == ["Hello, ", "wörld ✓"]


def test_tool_call_split_across_chunks_is_put_back_together() -> None:
    answer = answer_of(
        delta(role="assistant", content=None),
        call_delta(0, id="call_a", type="function", function={"name": "read_", "arguments": ""}),
        call_delta(0, function={"name": "file"}),
        call_delta(0, function={"arguments": '{"pa'}),
        call_delta(0, function={"arguments": 'th": "src/a.py"}'}),
        delta("tool_calls"),
    )
    (call,) = answer.tool_calls()
    assert (call.id, call.name) == ("call_a", "read_file")
    assert call.arguments == {"path": "src/a.py"}
    assert answer.finish_reason == "tool_calls"


def test_interleaved_tool_calls_are_kept_apart_by_index_and_ordered_by_it() -> None:
    answer = answer_of(
        call_delta(1, id="call_b", function={"name": "search", "arguments": '{"q"'}),
        call_delta(0, id="call_a", function={"name": "read_file", "arguments": '{"path"'}),
        call_delta(1, function={"arguments": ': "def"}'}),
        call_delta(0, function={"arguments": ': "a.py"}'}),
        delta("tool_calls"),
    )
    calls = answer.tool_calls()
    assert [(c.id, c.name) for c in calls] == [("call_a", "read_file"), ("call_b", "search")]
    assert [c.arguments for c in calls] == [{"path": "a.py"}, {"q": "def"}]


def test_whole_calls_without_an_index_are_told_apart_by_their_position() -> None:
    # Some servers send each call complete in one chunk and leave `index` out.
    answer = answer_of(
        delta(
            tool_calls=[
                {"id": "x", "function": {"name": "read_file", "arguments": "{}"}},
                {"id": "y", "function": {"name": "search", "arguments": "{}"}},
            ]
        ),
        delta("tool_calls"),
    )
    assert [(c.id, c.name) for c in answer.tool_calls()] == [("x", "read_file"), ("y", "search")]


def test_a_call_sent_without_an_id_gets_one() -> None:
    answer = answer_of(call_delta(0, function={"name": "read_file", "arguments": "{}"}))
    assert answer.tool_calls()[0].id == "call_0"


def test_the_usage_only_last_chunk_sets_the_usage_by_part() -> None:
    usage_chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 12},
        },
    }
    answer = answer_of(delta(content="hi"), delta("stop"), usage_chunk)
    assert answer.text == "hi" and answer.finish_reason == "stop"
    assert answer.usage == Usage(
        input_tokens=120, cached_input_tokens=100, output_tokens=30, reasoning_tokens=12
    )


def test_usage_without_details_or_with_null_counts_is_read_as_zero() -> None:
    answer = answer_of({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": None}})
    assert answer.usage == Usage(input_tokens=5, output_tokens=0)


def test_no_usage_chunk_leaves_the_usage_unknown() -> None:
    answer = answer_of(delta(content="hi"), delta("stop"))
    assert answer.usage is None
    assert answer.output_bytes() == 2


def test_output_bytes_count_text_and_tool_calls_in_utf8() -> None:
    answer = answer_of(
        delta(content="é"), call_delta(0, function={"name": "f", "arguments": '{"a":"✓"}'})
    )
    assert answer.output_bytes() == 2 + 1 + len('{"a":"✓"}'.encode())


@pytest.mark.parametrize(
    "chunk",
    [
        {"error": {"message": "The server had an error while processing your request."}},
        {"object": "error", "message": "The server had an error while processing your request."},
        {"error": "The server had an error while processing your request."},
    ],
)
def test_an_error_object_in_the_stream_raises_with_the_servers_message(chunk: Any) -> None:
    answer = StreamedAnswer()
    answer.add(delta(content="par"))
    with pytest.raises(StreamErrorEvent) as info:
        answer.add(chunk)
    assert str(info.value) == "The server had an error while processing your request."


@pytest.mark.parametrize(
    ("chunk", "named"),
    [
        ([1, 2], "a chunk is a list"),
        ("text", "a chunk is a string"),
        ({"choices": {"0": {}}}, "'choices' is an object"),
        ({"choices": ["x"]}, "'choices[0]' is a string"),
        ({"choices": [{"delta": "hi"}]}, "'choices[0].delta' is a string"),
        ({"choices": [{"delta": {"content": 7}}]}, "'choices[0].delta.content' is a number"),
        ({"choices": [{"delta": {"tool_calls": {"index": 0}}}]}, "'choices[0].delta.tool_calls'"),
        (
            {"choices": [{"delta": {"tool_calls": [{"index": "0"}]}}]},
            "'choices[0].delta.tool_calls[0].index' is a string",
        ),
        (
            {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": 3}}]}}]},
            "'choices[0].delta.tool_calls[0].function.name' is a number",
        ),
        ({"choices": [{"delta": {}, "finish_reason": 1}]}, "'choices[0].finish_reason'"),
    ],
)
def test_a_chunk_of_the_wrong_shape_raises_naming_the_field(chunk: Any, named: str) -> None:
    with pytest.raises(ChunkError) as info:
        StreamedAnswer().add(chunk)
    assert named in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("usage", "named"),
    [
        ([1], "'usage' is a list"),
        ({"prompt_tokens": -1}, "'usage.prompt_tokens' is a number"),
        ({"completion_tokens": "9"}, "'usage.completion_tokens' is a string"),
        ({"prompt_tokens": float("inf")}, "'usage.prompt_tokens' is a number"),
    ],
)
def test_a_usage_report_of_the_wrong_shape_leaves_the_answer_and_names_the_field(
    usage: Any, named: str
) -> None:
    answer = StreamedAnswer()
    answer.add(delta(content="fine"))
    answer.add({"choices": [], "usage": {"prompt_tokens": 5}})
    answer.add({"choices": [], "usage": usage})  # the last report is the one that counts
    assert answer.text == "fine"
    assert answer.usage is None
    assert answer.usage_problem is not None and named in answer.usage_problem
