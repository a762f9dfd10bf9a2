"""A scripted OpenAI-compatible Chat Completions server for tests and benchmarks.

It stands in for the network: real HTTP on 127.0.0.1 (starlette + uvicorn in a background
thread) that the official ``openai`` SDK talks to unmodified, so tests exercise the real client,
transport, retries, timeouts and streaming parser. Every chat request takes the next scripted
reply from a FIFO queue, or asks ``responder`` when the queue is empty::

    with ScriptedOpenAI(latency=0.05) as server:
        server.enqueue(ToolCall("read_file", {"path": "a.py"}), Status(429), Text("done"))
        client = AsyncOpenAI(base_url=server.url, api_key="sk-test")
        ...
        assert server.requests[0]["model"] == "scripted-model"

Replies: ``Text``, ``ToolCall``, ``ToolCalls`` (several calls in one message),
``MalformedToolCall`` (arguments that are not JSON), ``Status`` (an HTTP error with an
OpenAI-style body), ``Hang`` (say nothing for a while), ``CutStream`` (drop the connection in
the middle of a reply, or end it early) and ``StreamEvent`` (one extra server-sent event in a
stream: an ``error`` event, a malformed chunk). ``turns()`` and ``echo_last_user()`` build responders for benchmarks.

Latency, hangs and streaming delays are ``asyncio.sleep``s on the server's event loop, so any
number of concurrent requests overlap. Responders run on the server's thread.

For processes in other languages, ``python -m tests.rig.scripted_openai`` serves the same thing
and prints ``URL http://127.0.0.1:PORT/v1`` once ready; ``POST /_script`` appends replies in the
JSON form read by :func:`reply_from_json` and ``GET /_requests`` returns the recorded bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http
import inspect
import itertools
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "CutStream",
    "Hang",
    "MalformedToolCall",
    "Reply",
    "Responder",
    "ScriptedOpenAI",
    "Status",
    "StreamEvent",
    "Text",
    "ToolCall",
    "ToolCalls",
    "echo_last_user",
    "main",
    "reply_from_json",
    "turns",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Text:
    """An assistant message with text content.

    Streamed as ``chunks`` pieces (default: about one per word), ``chunk_delay`` seconds apart.
    Token counts default to an estimate of about four bytes a token (see the module's
    ``_prompt_tokens``); usage is sent only when ``include_usage`` is true (and, when
    streaming, only when the request asked for it with ``stream_options.include_usage``).
    """

    content: str
    chunks: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    include_usage: bool = True
    finish_reason: str = "stop"
    chunk_delay: float = 0.0


@dataclass(frozen=True)
class ToolCall:
    """An assistant message with one tool call (finish_reason ``tool_calls``).

    ``arguments`` is a dict (sent as JSON) or a string sent verbatim. ``id`` defaults to a
    server-unique ``call_N``. ``content`` is optional text sent before the call.
    """

    name: str
    arguments: dict[str, Any] | str
    id: str | None = None
    content: str = ""


@dataclass(frozen=True)
class ToolCalls:
    """An assistant message with several tool calls.

    The message content is ``content`` when given, else the calls' own ``content`` joined.
    """

    calls: Sequence[ToolCall]
    content: str = ""


@dataclass(frozen=True)
class MalformedToolCall:
    """A tool call whose arguments are not valid JSON (``raw_arguments`` sent verbatim)."""

    name: str
    raw_arguments: str = '{"path": '


@dataclass(frozen=True)
class Status:
    """An HTTP error with an OpenAI-style body ``{"error": {"message", "type", "param", "code"}}``.

    ``retry_after`` (seconds) sets the ``Retry-After`` header. ``error_type`` and
    ``error_code`` override the body's ``type`` and ``code`` (defaults follow OpenAI's
    conventions for the status).
    """

    code: int
    message: str | None = None
    retry_after: float | None = None
    error_type: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class Hang:
    """Accept the request, then send nothing for ``seconds``; other requests are not blocked.

    After that the server answers with ``then``, or with a 504 error when ``then`` is None.
    The wait ends early when the server stops.
    """

    seconds: float
    then: Reply | None = None


@dataclass(frozen=True)
class CutStream:
    """Send the beginning of ``reply``, then drop the connection without finishing it.

    Streaming: the opening role chunk and the first ``after_chunks`` content chunks (text
    pieces or tool-argument pieces) are sent, then the connection is aborted with no finish
    chunk and no ``data: [DONE]``. Non-streaming: the headers and part of the JSON body are
    sent. Either way the client sees a transport error, not a short answer.

    With ``clean`` a stream ends there properly instead (a proxy that gave up): the client sees
    a well-formed stream that simply stops before the finish chunk.
    """

    reply: Text | ToolCall | ToolCalls | MalformedToolCall
    after_chunks: int = 1
    clean: bool = False


@dataclass(frozen=True)
class StreamEvent:
    """Stream ``reply`` with one extra server-sent event after its first ``after_chunks`` chunks.

    The event carries ``data`` verbatim (``data: <data>``) and is named ``event`` when that is set
    (``event: error``); the reply then goes on to its finish chunk, usage and ``[DONE]``. This is
    how a server reports an error mid-stream (``data`` of ``{"error": {"message": ...}}``) and how
    a broken proxy's chunk looks (``data`` that is not JSON). Non-streaming requests get ``reply``.
    """

    reply: Text | ToolCall | ToolCalls | MalformedToolCall
    data: str
    after_chunks: int = 1
    event: str | None = None


Reply: TypeAlias = (
    Text | ToolCall | ToolCalls | MalformedToolCall | Status | Hang | CutStream | StreamEvent
)
"""Anything the server can answer a chat request with."""

_REPLY_TYPES = (
    Text,
    ToolCall,
    ToolCalls,
    MalformedToolCall,
    Status,
    Hang,
    CutStream,
    StreamEvent,
)

Responder: TypeAlias = Callable[[dict[str, Any]], "Reply | Awaitable[Reply]"]
"""Called with the request body when the script queue is empty."""


def _default_responder(body: dict[str, Any]) -> Reply:
    return Text("ok")


def turns(
    n_tool_turns: int,
    tool: str = "read_file",
    arguments: dict[str, Any] | None = None,
    final: str = "done",
) -> Responder:
    """A responder for an agent loop of ``n_tool_turns`` tool calls followed by a final answer.

    It calls ``tool`` while the request holds fewer than ``n_tool_turns`` ``role: "tool"``
    messages, then answers ``Text(final)``.
    """
    args = dict(arguments or {})

    def respond(body: dict[str, Any]) -> Reply:
        done = sum(1 for m in _messages(body) if isinstance(m, dict) and m.get("role") == "tool")
        if done < n_tool_turns:
            return ToolCall(tool, args)
        return Text(final)

    return respond


def echo_last_user() -> Responder:
    """A responder answering with the content of the request's last user message."""

    def respond(body: dict[str, Any]) -> Reply:
        for message in reversed(_messages(body)):
            if isinstance(message, dict) and message.get("role") == "user":
                return Text(_content_text(message.get("content")))
        return Text("")

    return respond


def _messages(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def reply_from_json(obj: Any) -> Reply:
    """Build a reply from its JSON form (used by ``--script`` and ``POST /_script``).

    Forms: ``{"text": "...", ...Text fields}``, ``{"tool_call": {"name", "arguments", "id"?,
    "content"?}}``, ``{"tool_calls": [{...}, ...], "content"?}``, ``{"malformed_tool_call":
    {"name", "raw_arguments"?}}``, ``{"status": 500, "message"?, "retry_after"?, "error_type"?,
    "error_code"?}``, ``{"hang": 5.0, "then"?: {...}}``, ``{"cut_stream": {...},
    "after_chunks"?: 1, "clean"?: false}``, ``{"stream_event": {...}, "data": "...",
    "after_chunks"?: 1, "event"?: "error"}``. A bare string is ``{"text": ...}``.
    """
    if isinstance(obj, str):
        return Text(obj)
    if not isinstance(obj, dict):
        raise ValueError(f"a scripted reply must be an object, not {obj!r}")
    if "text" in obj:
        return Text(str(obj["text"]), **_fields(obj, Text, skip=("text",)))
    if "tool_call" in obj:
        return _tool_call_from_json(obj["tool_call"])
    if "tool_calls" in obj:
        calls = obj["tool_calls"]
        if not isinstance(calls, list) or not calls:
            raise ValueError("tool_calls must be a non-empty list")
        return ToolCalls(
            [_tool_call_from_json(c) for c in calls], content=str(obj.get("content", ""))
        )
    if "malformed_tool_call" in obj:
        spec = obj["malformed_tool_call"]
        if isinstance(spec, str):
            return MalformedToolCall(spec)
        if not isinstance(spec, dict):
            raise ValueError("malformed_tool_call must be an object or a name")
        return MalformedToolCall(**_fields(spec, MalformedToolCall))
    if "status" in obj:
        return Status(int(obj["status"]), **_fields(obj, Status, skip=("status",)))
    if "hang" in obj:
        then = obj.get("then")
        return Hang(float(obj["hang"]), None if then is None else reply_from_json(then))
    if "cut_stream" in obj:
        inner = reply_from_json(obj["cut_stream"])
        if not isinstance(inner, Text | ToolCall | ToolCalls | MalformedToolCall):
            raise ValueError("cut_stream must wrap a text or tool-call reply")
        return CutStream(inner, int(obj.get("after_chunks", 1)), bool(obj.get("clean", False)))
    if "stream_event" in obj:
        inner = reply_from_json(obj["stream_event"])
        if not isinstance(inner, Text | ToolCall | ToolCalls | MalformedToolCall):
            raise ValueError("stream_event must wrap a text or tool-call reply")
        if not isinstance(obj.get("data"), str):
            raise ValueError("stream_event needs its event's data as a string")
        event = obj.get("event")
        return StreamEvent(
            inner,
            obj["data"],
            int(obj.get("after_chunks", 1)),
            None if event is None else str(event),
        )
    raise ValueError(f"unknown scripted reply: {obj!r}")


def _tool_call_from_json(spec: Any) -> ToolCall:
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a tool call needs a name: {spec!r}")
    return ToolCall(**_fields(spec, ToolCall))


def _fields(obj: dict[str, Any], cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The keys of ``obj`` other than ``skip``, which must all be parameters of ``cls``."""
    allowed = set(inspect.signature(cls).parameters)
    kwargs = {k: v for k, v in obj.items() if k not in skip}
    if unknown := set(kwargs) - allowed:
        raise ValueError(f"unknown keys for {cls.__name__}: {sorted(unknown)}")
    return kwargs


def _split_words(content: str) -> list[str]:
    """About one piece per word, each carrying its trailing whitespace; joins back exactly."""
    return [p for p in re.findall(r"\s*\S+\s*|\s+", content) if p]


def _split_even(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text)))
    size, extra = divmod(len(text), n)
    pieces, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return [p for p in pieces if p]


def _text_pieces(reply: Text) -> list[str]:
    if reply.chunks is not None:
        return _split_even(reply.content, reply.chunks)
    return _split_words(reply.content)


def _prompt_tokens(body: dict[str, Any]) -> int:
    tools = body.get("tools")
    model = body.get("model")
    if isinstance(model, str) and (encoding := _openai_encoding(model)) is not None:
        # As OpenAI bills: its tokenizer, 3 tokens of template per message and 3 per request.
        count = encoding.encode_ordinary
        total = 3
        for m in _messages(body):
            if isinstance(m, dict):
                total += (
                    3
                    + len(count(str(m.get("role", ""))))
                    + len(count(_content_text(m.get("content"))))
                )
                if m.get("tool_calls"):
                    total += len(count(json.dumps(m["tool_calls"])))
        tools_json = json.dumps(tools, ensure_ascii=False) if isinstance(tools, list) else ""
        return total + len(count(tools_json))
    payload = _messages(body) + (tools if isinstance(tools, list) else [])
    return math.ceil(len(json.dumps(payload).encode()) / 4)


@functools.cache
def _openai_encoding(model: str) -> Any:
    """The tokenizer of an OpenAI model name (bpe-openai ships them offline), else None."""
    import bpe_openai

    try:
        return bpe_openai.get_encoding(bpe_openai.encoding_name_for_model(model))
    except (KeyError, ValueError, LookupError):
        return None


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text.encode()) / 4))


def _usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@dataclass
class _Message:
    """A text or tool-call reply, resolved for one request (ids fixed, arguments serialized)."""

    content: str
    calls: list[tuple[str, str, str]]  # (id, name, arguments)
    finish_reason: str
    usage: dict[str, Any] | None
    pieces: list[str] = field(default_factory=list)
    chunk_delay: float = 0.0

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "role": "assistant",
            "content": self.content if (self.content or not self.calls) else None,
            "refusal": None,
        }
        if self.calls:
            msg["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, n, a in self.calls
            ]
        return msg

    def deltas(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The opening delta and the body deltas, streamed the way OpenAI streams them."""
        body: list[dict[str, Any]] = [{"content": p} for p in self.pieces]
        for index, (call_id, name, arguments) in enumerate(self.calls):
            body.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
            body.extend(
                {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                for piece in _split_even(arguments, math.ceil(len(arguments) / 8))
            )
        if self.calls and not self.pieces:
            # Like OpenAI: the role comes with the first call's id and name.
            return {"role": "assistant", "content": None, **body[0]}, body[1:]
        return {"role": "assistant", "content": ""}, body


class _ConnectionCut(Exception):
    """Raised inside a response on purpose, so uvicorn drops the connection."""


class _QuietCuts(logging.Filter):
    """Hides uvicorn's 'Exception in ASGI application' for the intentional cuts only."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BaseExceptionGroup):
            return exc.split(_ConnectionCut)[1] is not None
        return not isinstance(exc, _ConnectionCut)


_quiet_cuts = _QuietCuts()
if _quiet_cuts not in logging.getLogger("uvicorn.error").filters:
    logging.getLogger("uvicorn.error").addFilter(_quiet_cuts)


class _PartialBodyResponse(Response):
    """Announces the full body's length, sends part of it, then drops the connection."""

    def __init__(self, body: bytes, send_bytes: int) -> None:
        super().__init__(body, media_type="application/json")
        self._send_bytes = send_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        partial = bytes(self.body[: self._send_bytes])
        await send({"type": "http.response.body", "body": partial, "more_body": True})
        raise _ConnectionCut("scripted cut")


def _error_body(
    status: int, message: str | None, error_type: str | None, code: str | None
) -> dict[str, Any]:
    if message is None:
        try:
            message = http.HTTPStatus(status).phrase
        except ValueError:
            message = f"HTTP {status}"
    if error_type is None:
        error_type = {
            401: "invalid_request_error",
            403: "permission_denied",
            404: "invalid_request_error",
            429: "requests",
        }.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if code is None and status == 429:
        code = "rate_limit_exceeded"
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _error(
    status: int,
    message: str | None = None,
    error_type: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        _error_body(status, message, error_type, code), status_code=status, headers=headers
    )


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class ScriptedOpenAI:
    """An OpenAI-compatible Chat Completions server on 127.0.0.1 that plays a script.

    ``start()`` serves in a daemon thread on a free port (or ``port``) and returns when ready;
    ``stop()`` ends it (pending hangs and latencies end early). Also a context manager.
    """

    def __init__(
        self,
        latency: float = 0.0,
        require_key: str | None = None,
        models: Sequence[str] = ("scripted-model",),
        *,
        port: int = 0,
    ) -> None:
        self.latency = latency
        self.require_key = require_key
        self.models: tuple[str, ...] = tuple(models)
        self.responder: Responder = _default_responder
        self.requests: list[dict[str, Any]] = []
        # The client end (host, port) of each connection a chat request came on, in order.
        self.peers: list[tuple[str, int]] = []
        self._port = port
        self._queue: deque[Reply] = deque()
        self._queue_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL for the SDK, ``http://127.0.0.1:PORT/v1`` (after ``start()``)."""
        if self._url is None:
            raise RuntimeError("ScriptedOpenAI is not started")
        return self._url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    def start(self, timeout: float = 10.0) -> Self:
        """Serve in a background daemon thread; return once the port accepts requests."""
        if self._thread is not None:
            raise RuntimeError("ScriptedOpenAI is already started")
        config = uvicorn.Config(
            self._app(),
            host="127.0.0.1",
            port=self._port,
            http="h11",
            ws="none",
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, name=f"ScriptedOpenAI:{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                self._thread = None
                raise RuntimeError("ScriptedOpenAI failed to start (see the uvicorn.error log)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("ScriptedOpenAI did not start in time")
            time.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        self._url = f"http://127.0.0.1:{port}/v1"
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        if self._loop is not None and self._closing is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._closing.set)
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None
        self._url = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def enqueue(self, *replies: Reply) -> None:
        """Append replies to the script; each chat request takes the next one."""
        for reply in replies:
            if not isinstance(reply, _REPLY_TYPES):
                raise TypeError(f"not a scripted reply: {reply!r}")
        with self._queue_lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._queue_lock:
            return len(self._queue)

    async def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._queue_lock:
            if self._queue:
                return self._queue.popleft()
        try:
            reply = self.responder(body)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:
            log.exception("ScriptedOpenAI responder failed")
            return Status(500, f"scripted responder failed: {exc!r}")
        return reply

    def _app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._closing = asyncio.Event()
            yield

        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
                Route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
                Route("/_script", self._post_script, methods=["POST"]),
                Route("/_requests", self._get_requests, methods=["GET"]),
            ],
            lifespan=lifespan,
        )

    async def _sleep(self, seconds: float) -> bool:
        """Sleep without blocking the loop; False if the server started stopping meanwhile."""
        closing = self._closing
        if closing is None:
            await asyncio.sleep(seconds)
            return True
        if closing.is_set():
            return False
        if seconds <= 0:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), seconds)
        return not closing.is_set()

    def _denied(self, request: Request) -> Response | None:
        if self.require_key is None:
            return None
        if request.headers.get("authorization") == f"Bearer {self.require_key}":
            return None
        return _error(
            401,
            "Incorrect API key provided.",
            "invalid_request_error",
            "invalid_api_key",
        )

    def _model_obj(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 0, "owned_by": "scripted"}

    async def _list_models(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        return JSONResponse({"object": "list", "data": [self._model_obj(m) for m in self.models]})

    async def _get_model(self, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        model = request.path_params["model"]
        if model not in self.models:
            return self._unknown_model(model)
        return JSONResponse(self._model_obj(model))

    @staticmethod
    def _unknown_model(model: Any) -> Response:
        return _error(
            404, f"The model `{model}` does not exist", "invalid_request_error", "model_not_found"
        )

    async def _post_script(self, request: Request) -> Response:
        try:
            items = await request.json()
            if not isinstance(items, list):
                items = [items]
            replies = [reply_from_json(item) for item in items]
        except (ValueError, TypeError) as exc:
            return _error(400, f"bad script: {exc}")
        self.enqueue(*replies)
        return JSONResponse({"queued": len(replies), "pending": self.pending})

    async def _get_requests(self, request: Request) -> Response:
        return JSONResponse(list(self.requests))

    async def _chat(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        self.requests.append(body)
        if request.client is not None:
            self.peers.append((request.client.host, request.client.port))
        if (denied := self._denied(request)) is not None:
            return denied
        if body.get("model") not in self.models:
            return self._unknown_model(body.get("model"))
        if not isinstance(body.get("messages"), list):
            return _error(
                400, "'messages' is a required property", code="missing_required_parameter"
            )
        reply = await self._next_reply(body)  # taken on arrival: FIFO order = arrival order
        if not await self._sleep(self.latency):
            return _error(503, "The scripted server is shutting down.")
        return await self._render(reply, body)

    async def _render(self, reply: Reply, body: dict[str, Any]) -> Response:
        stream = body.get("stream") is True
        if isinstance(reply, Hang):
            if not await self._sleep(reply.seconds):
                return _error(503, "The scripted server is shutting down.")
            then = reply.then or Status(504, "The scripted hang ended without a reply.")
            return await self._render(then, body)
        if isinstance(reply, Status):
            headers = None
            if reply.retry_after is not None:
                headers = {"Retry-After": f"{reply.retry_after:g}"}
            return _error(reply.code, reply.message, reply.error_type, reply.error_code, headers)
        cut_after: int | None = None
        fault: CutStream | StreamEvent | None = None
        if isinstance(reply, CutStream | StreamEvent):
            fault = reply
            if isinstance(reply, CutStream):
                cut_after = max(0, reply.after_chunks)
            reply = reply.reply
        if not isinstance(reply, Text | ToolCall | ToolCalls | MalformedToolCall):
            return _error(500, f"not a scripted reply: {reply!r}")
        message = self._resolve(reply, body)
        completion_id = f"chatcmpl-scripted-{next(self._ids)}"
        model = str(body["model"])
        if stream:
            options = body.get("stream_options")
            want_usage = isinstance(options, dict) and options.get("include_usage") is True
            return StreamingResponse(
                self._stream(message, completion_id, model, want_usage, fault),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        result: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message.message(),
                    "finish_reason": message.finish_reason,
                    "logprobs": None,
                }
            ],
        }
        if message.usage is not None:
            result["usage"] = message.usage
        if cut_after is not None:
            data = json.dumps(result).encode()
            return _PartialBodyResponse(data, len(data) // 2)
        return JSONResponse(result)

    def _resolve(
        self, reply: Text | ToolCall | ToolCalls | MalformedToolCall, body: dict[str, Any]
    ) -> _Message:
        if isinstance(reply, Text):
            usage = None
            if reply.include_usage:
                usage = _usage(
                    reply.prompt_tokens
                    if reply.prompt_tokens is not None
                    else _prompt_tokens(body),
                    reply.completion_tokens
                    if reply.completion_tokens is not None
                    else _estimate_tokens(reply.content),
                    reply.cached_tokens,
                    reply.reasoning_tokens,
                )
            return _Message(
                reply.content,
                [],
                reply.finish_reason,
                usage,
                _text_pieces(reply),
                reply.chunk_delay,
            )
        if isinstance(reply, MalformedToolCall):
            calls = [ToolCall(reply.name, reply.raw_arguments)]
            content = ""
        elif isinstance(reply, ToolCall):
            calls, content = [reply], reply.content
        else:
            calls = list(reply.calls)
            content = reply.content or "".join(c.content for c in calls)
        resolved = [
            (
                c.id or f"call_{next(self._call_ids)}",
                c.name,
                c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments),
            )
            for c in calls
        ]
        completion = _estimate_tokens(content + "".join(n + a for _, n, a in resolved))
        return _Message(
            content,
            resolved,
            "tool_calls",
            _usage(_prompt_tokens(body), completion),
            _split_words(content),
        )

    async def _stream(
        self,
        message: _Message,
        completion_id: str,
        model: str,
        want_usage: bool,
        fault: CutStream | StreamEvent | None,
    ) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            obj: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
                ],
            }
            if want_usage:
                obj["usage"] = None
            return _sse(obj)

        head, body = message.deltas()
        # Where the fault happens: after that many body chunks, at the latest before the finish.
        at = min(max(0, fault.after_chunks), len(body)) if fault is not None else -1
        extra = b""
        if isinstance(fault, StreamEvent):
            name = b"" if fault.event is None else b"event: " + fault.event.encode() + b"\n"
            extra = name + b"data: " + fault.data.encode() + b"\n\n"
        yield chunk(head)
        for n, delta in enumerate([*body, None]):
            if n == at:
                if isinstance(fault, StreamEvent):
                    yield extra
                elif fault is not None and fault.clean:
                    return
                else:
                    raise _ConnectionCut("scripted cut")
            if delta is None:
                break
            if message.chunk_delay > 0 and not await self._sleep(message.chunk_delay):
                raise _ConnectionCut("server stopping")
            yield chunk(delta)
        yield chunk({}, message.finish_reason)
        if want_usage and message.usage is not None:
            yield _sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": message.usage,
                }
            )
        yield b"data: [DONE]\n\n"


def serve_until_stdin_closes(server: ScriptedOpenAI) -> int:
    """Child side of `server_process`: start `server`, print its URL, serve until stdin closes."""
    server.start()
    print(f"URL {server.url}", flush=True)
    try:
        while sys.stdin.read(1):
            pass
    finally:
        server.stop()
    return 0


@contextlib.contextmanager
def server_process(script: Path, *args: str, cwd: Path | None = None) -> Iterator[str]:
    """Run `python script *args` (which calls `serve_until_stdin_closes`) and yield its URL.

    A scripted server in its own process, so its streaming does not compete with the caller for
    the interpreter (benchmarks); closing its stdin stops it.
    """
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("URL "):
            raise RuntimeError(f"the scripted server did not start: {line!r}")
        yield line.split(" ", 1)[1].strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_stdin_eof(done: threading.Event) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no usable stdin: EOF
        while os.read(sys.stdin.fileno(), 65536):
            pass
    done.set()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or stdin EOF with ``--exit-on-stdin-eof``)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.rig.scripted_openai",
        description="A scripted OpenAI-compatible Chat Completions server on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--text", default="ok", help="the reply once the script is played")
    parser.add_argument("--script", type=Path, help="a JSON list of replies, played in order")
    parser.add_argument("--require-key", help="an API key clients must send")
    parser.add_argument(
        "--model", action="append", dest="models", help="a served model (repeatable)"
    )
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="also stop when stdin is closed"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

    server = ScriptedOpenAI(
        latency=args.latency,
        require_key=args.require_key,
        models=tuple(args.models or ("scripted-model",)),
        port=args.port,
    )
    if args.script is not None:
        items = json.loads(args.script.read_text())
        if not isinstance(items, list):
            parser.error("--script must hold a JSON list")
        server.enqueue(*(reply_from_json(item) for item in items))
    text: str = args.text
    server.responder = lambda body: Text(text)

    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.exit_on_stdin_eof:
        threading.Thread(
            target=_wait_for_stdin_eof, args=(done,), name="stdin-eof", daemon=True
        ).start()

    server.start()
    try:
        print(f"URL {server.url}", flush=True)
        while not done.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
