"""One streamed Chat Completions answer, put together from its decoded JSON chunks.

The OpenAI-compatible backend reads the server-sent events itself and hands each chunk here as
plain JSON (dicts, lists, strings): text deltas, tool-call deltas merged by `index`, the finish
reason, and the usage chunk that ends the stream (`choices == []`). Building the SDK's pydantic
objects for every chunk cost more CPU than the rest of a model call; reading the few fields that
matter from dicts costs almost nothing.

Anything that is not the shape of a chunk raises `ChunkError` naming the field and what was wrong,
so a broken proxy gives a sentence, never a TypeError deep in the runtime. A usage report that is
not a set of token counts (a string, a negative number, not an object) does not spoil the answer:
`usage` stays None and `usage_problem` says what was wrong, and the call is metered by its
reservation (metering.py).
"""

from __future__ import annotations

from typing import Any

from agentls.core.events import Usage
from agentls.core.llm import OnDelta, ToolCallRequest


class ChunkError(Exception):
    """A chunk that does not have the shape of a Chat Completions chunk; says which field."""


class StreamErrorEvent(Exception):
    """The server reported an error inside the stream (an `error` event or an error object)."""


class StreamedAnswer:
    """Accumulates one answer: `add` every chunk in order, then read the fields.

    Text reaches `on_delta` when `flush` is called: the reader flushes after each network read,
    so the text that arrived together is one delta (one run event, not one per token) and none
    of it waits for the next read.
    """

    __slots__ = (
        "_calls",
        "_on_delta",
        "_sent",
        "_text",
        "chunks",
        "finish_reason",
        "usage",
        "usage_problem",
    )

    def __init__(self, on_delta: OnDelta | None = None) -> None:
        self._on_delta = on_delta
        self._text: list[str] = []
        self._sent = 0  # how many pieces of _text went to on_delta
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        # Why the usage the server reported cannot be used (then `usage` is None).
        self.usage_problem: str | None = None
        self.chunks = 0  # how many chunks were added

    @property
    def text(self) -> str:
        return "".join(self._text)

    def flush(self) -> None:
        """Pass the text added since the last flush to `on_delta`, as one delta."""
        if self._on_delta is not None and len(self._text) > self._sent:
            pending = self._text[self._sent :]
            self._sent = len(self._text)
            self._on_delta(pending[0] if len(pending) == 1 else "".join(pending))

    def tool_calls(self) -> list[ToolCallRequest]:
        """The calls in index order; a call the server sent without an id gets `call_<index>`."""
        return [
            ToolCallRequest(id=call_id or f"call_{i}", name=name, raw_arguments=arguments)
            for i, (call_id, name, arguments) in sorted(self._calls.items())
        ]

    def output_bytes(self) -> int:
        """UTF-8 size of everything the model wrote (text, tool names and arguments)."""
        size = len(self.text.encode())
        for _, name, arguments in self._calls.values():
            size += len(name.encode()) + len(arguments.encode())
        return size

    def add(self, chunk: Any) -> None:
        """Take one decoded chunk; raises StreamErrorEvent or ChunkError."""
        if type(chunk) is not dict:
            raise ChunkError(f"a chunk is {_kind(chunk)}, not an object")
        self.chunks += 1
        if chunk.get("error") or chunk.get("object") == "error":
            raise StreamErrorEvent(error_message(chunk))
        usage = chunk.get("usage")
        if usage is not None:
            try:
                self.usage, self.usage_problem = _usage_of(usage), None
            except ChunkError as exc:  # the answer stands; only its count is unusable
                self.usage, self.usage_problem = None, str(exc)
        choices = chunk.get("choices")
        if choices is None:
            return
        for n, item in enumerate(_list(choices, "choices")):
            choice = _object(item, f"choices[{n}]")
            delta = choice.get("delta")
            if delta:
                delta = _object(delta, f"choices[{n}].delta")
                content = delta.get("content")
                if content:
                    self._text.append(_string(content, f"choices[{n}].delta.content"))
                calls = delta.get("tool_calls")
                if calls:
                    self._add_calls(calls, f"choices[{n}].delta.tool_calls")
            finish = choice.get("finish_reason")
            if finish:
                self.finish_reason = _string(finish, f"choices[{n}].finish_reason")

    def _add_calls(self, calls: Any, where: str) -> None:
        for position, item in enumerate(_list(calls, where)):
            at = f"{where}[{position}]"
            call = _object(item, at)
            # Some servers leave out `index` when each chunk carries whole calls: use the position.
            index = call.get("index", position)
            if type(index) is not int or index < 0:
                raise ChunkError(f"'{at}.index' is {_kind(index)}, not a non-negative integer")
            slot = self._calls.get(index)
            if slot is None:
                slot = self._calls[index] = ["", "", ""]
            call_id = call.get("id")
            if call_id:
                slot[0] = _string(call_id, f"{at}.id")
            function = call.get("function")
            if function:
                function = _object(function, f"{at}.function")
                name = function.get("name")
                if name:
                    slot[1] += _string(name, f"{at}.function.name")
                arguments = function.get("arguments")
                if arguments:
                    slot[2] += _string(arguments, f"{at}.function.arguments")


def error_message(chunk: dict[str, Any]) -> str:
    """The message of an error the server put in the stream (OpenAI's or vLLM's form)."""
    error = chunk.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    if isinstance(chunk.get("message"), str) and chunk["message"]:
        return str(chunk["message"])
    return "An error occurred during streaming"


def _string(value: Any, where: str) -> str:
    if type(value) is not str:
        raise ChunkError(f"'{where}' is {_kind(value)}, not a string")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise ChunkError(f"'{where}' is {_kind(value)}, not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if type(value) is not list:
        raise ChunkError(f"'{where}' is {_kind(value)}, not a list")
    return value


def _count(value: Any, where: str) -> int:
    if value is None:
        return 0
    if type(value) is int and value >= 0:
        return value
    if type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    raise ChunkError(f"'{where}' is {_kind(value)}, not a token count")


def _usage_of(raw: Any) -> Usage:
    raw = _object(raw, "usage")
    prompt_details = raw.get("prompt_tokens_details")
    completion_details = raw.get("completion_tokens_details")
    cached = reasoning = 0
    if prompt_details:
        prompt_details = _object(prompt_details, "usage.prompt_tokens_details")
        cached = _count(
            prompt_details.get("cached_tokens"), "usage.prompt_tokens_details.cached_tokens"
        )
    if completion_details:
        completion_details = _object(completion_details, "usage.completion_tokens_details")
        reasoning = _count(
            completion_details.get("reasoning_tokens"),
            "usage.completion_tokens_details.reasoning_tokens",
        )
    return Usage(
        input_tokens=_count(raw.get("prompt_tokens"), "usage.prompt_tokens"),
        cached_input_tokens=cached,
        output_tokens=_count(raw.get("completion_tokens"), "usage.completion_tokens"),
        reasoning_tokens=reasoning,
        estimated=False,
    )


def _kind(value: Any) -> str:
    """How a wrong value is named in an error: its JSON type and a short excerpt."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    name = names.get(type(value), "a number" if isinstance(value, int | float) else "a value")
    text = repr(value)
    return f"{name} ({text[:40] + '…' if len(text) > 40 else text})"
