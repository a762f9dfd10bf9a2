"""ChatModel over any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, LiteLLM...).

The `openai` SDK does the HTTP, the auth, the retries with exponential backoff on 429/5xx
(honouring Retry-After), the timeouts and the status errors; this module turns its stream into a
ChatResponse and its errors into one sentence a user can act on.

Per call the CPU goes where it must: the request body is sent as the plain dict it already is
(`client.post`, the SDK's documented way to send any body, skips the SDK's walk of its typed
params, ~1 ms a call), and the answer's events are decoded by the SDK's SSE decoder and read as
plain JSON by `chat_stream.StreamedAnswer` (the SDK's pydantic chunk objects cost ~0.1 ms each).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import anyio
import httpx2
import openai
from openai import AsyncOpenAI, RequestOptions
from openai._streaming import ServerSentEvent, SSEDecoder  # the SDK's own SSE decoder

from agentls.core.chat_stream import ChunkError, StreamedAnswer, StreamErrorEvent, error_message
from agentls.core.events import Usage
from agentls.core.llm import (
    ChatRequest,
    ChatResponse,
    ModelConfigError,
    ModelError,
    ModelSettings,
    ModelStreamError,
    OnDelta,
    utf8_prompt_bound,
)
from agentls.core.pricing import ModelPrice
from agentls.core.prompt_tokens import counted_prompt_bound, encoder_for

DEFAULT_MODEL = "gpt-4o-mini"
# Local servers (Ollama, llama.cpp, vLLM without auth) accept any key but the SDK insists on one.
PLACEHOLDER_KEY = "not-needed"
# What `chat.completions.create` sends besides the body: the API key as a bearer token.
_CHAT_OPTIONS: RequestOptions = {"security": {"bearer_auth": True}}
# How long the rest of a body after `[DONE]` may take to arrive before the connection is dropped.
DRAIN_SECONDS = 0.1


class OpenAIChatModel:
    """One AsyncOpenAI client per configuration, reused by every call (construction is costly)."""

    def __init__(self, settings: ModelSettings, *, client: AsyncOpenAI | None = None) -> None:
        self._model = settings.model or DEFAULT_MODEL
        self._where = settings.base_url or "OpenAI"
        self._client = client or AsyncOpenAI(
            api_key=settings.api_key or PLACEHOLDER_KEY,
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
        )

    @property
    def name(self) -> str:
        return self._model

    @property
    def own_price(self) -> ModelPrice | None:
        return None  # a provider's price is public data's (genai-prices) or the user's

    def prompt_token_bound(self, request: ChatRequest) -> int:
        """Exact for OpenAI model names (their tokenizer ships in bpe-openai), else the byte bound.

        Loads the tokenizer on first use (tens of ms): call it off the event loop.
        """
        encoder = encoder_for(self._model)
        if encoder is None:
            return utf8_prompt_bound(request)
        try:
            return counted_prompt_bound(request, encoder)
        except ValueError:  # a text the tokenizer refuses (too long to encode): bytes bound it
            return utf8_prompt_bound(request)

    def warm(self) -> None:
        """Do, on the calling (worker) thread, what the first call would otherwise do on the event
        loop: the transport imports its socket backend on the first request (~30 ms); the
        tokenizer loads on first count."""
        import importlib

        for module in ("anyio._backends._asyncio", "anyio.streams.memory", "anyio.streams.stapled"):
            importlib.import_module(module)
        encoder_for(self._model)

    async def aclose(self) -> None:
        await self._client.close()

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self._model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            args["tools"] = [t.to_openai() for t in request.tools]
            if request.tool_choice in ("auto", "none", "required"):
                args["tool_choice"] = request.tool_choice
            else:
                args["tool_choice"] = {
                    "type": "function",
                    "function": {"name": request.tool_choice},
                }
        if request.json_schema is not None:
            args["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.json_schema},
            }
        return args

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        answer = StreamedAnswer(on_delta)
        try:
            # The SDK sends it (auth, base URL, retries on 429/5xx with Retry-After, timeouts,
            # status errors) and hands back the open response; the chunks are read as plain JSON.
            response = await self._client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                body=self._arguments(request),
                options=_CHAT_OPTIONS,
                stream=True,
            )
        except openai.APIError as exc:
            raise self._explain(exc) from exc
        try:
            await self._read(response, answer)
        finally:
            await response.aclose()  # a cancelled or failed call frees its connection
        if answer.finish_reason is None:
            raise self._unfinished(response, answer)
        text = answer.text
        usage = answer.usage
        if usage is None:
            # The server sent no usage (llama.cpp's server, some proxies): count the prompt as it
            # was reserved and the output by the byte bound, which never exceeds max_tokens (the
            # server stops there), so an estimate never commits more than the call reserved.
            usage = Usage(
                input_tokens=await asyncio.to_thread(self.prompt_token_bound, request),
                output_tokens=min(answer.output_bytes(), request.max_tokens),
                estimated=True,
            )
        return ChatResponse(
            text,
            answer.tool_calls(),
            usage,
            answer.finish_reason,
            self._model,
            usage_problem=answer.usage_problem,
        )

    async def _read(self, response: httpx2.Response, answer: StreamedAnswer) -> None:
        """Feed the response's server-sent events to `answer` until `[DONE]` or the end."""
        where = self._where
        chunks = _flushing(response.aiter_bytes(), answer)  # decoded (gzip...) like the SDK's
        events = cast(AsyncGenerator[ServerSentEvent, None], SSEDecoder().aiter_bytes(chunks))
        try:
            async for event in events:
                data = event.data
                if data.startswith("[DONE]"):
                    await _drain(chunks)
                    return
                if not data:  # an event with no data is not dispatched (SSE); pings, comments
                    continue
                try:
                    chunk = json.loads(data)
                except ValueError:
                    if event.event == "error":
                        raise StreamErrorEvent(data) from None
                    raise ChunkError(f"a chunk is not JSON ({_short(data, 80)})") from None
                if event.event == "error":
                    raise StreamErrorEvent(error_message(chunk) if type(chunk) is dict else data)
                answer.add(chunk)
        except httpx2.TimeoutException as exc:
            raise self._broken("stopped sending (timeout)", answer) from exc
        except (httpx2.RequestError, anyio.EndOfStream, ssl.SSLError) as exc:
            raise self._broken("dropped the connection", answer) from exc
        except UnicodeDecodeError as exc:
            raise ModelStreamError(
                f"The model server at {where} sent an answer that is not UTF-8 text; the run "
                "stopped instead of using it.",
                usage=answer.usage,
            ) from exc
        except StreamErrorEvent as exc:
            raise ModelStreamError(
                f"The model server at {where} reported an error in the middle of its answer: "
                f"{_short(str(exc))}",
                usage=answer.usage,
            ) from exc
        except ChunkError as exc:
            raise ModelStreamError(
                f"The model server at {where} sent a malformed chunk: {exc}; the run stopped "
                "instead of using a partial answer.",
                usage=answer.usage,
            ) from exc
        finally:
            answer.flush()  # what arrived before an error was streamed too
            await events.aclose()
            await chunks.aclose()

    def _unfinished(self, response: httpx2.Response, answer: StreamedAnswer) -> ModelStreamError:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if answer.chunks == 0 and kind != "text/event-stream":
            # A web page or some other API answered: most often a base URL without its /v1.
            return ModelStreamError(
                f"The model server at {self._where} answered with {kind or 'an untyped body'} "
                "instead of a stream of chat chunks; check that the base URL is its "
                "OpenAI-compatible API (it usually ends in /v1)."
            )
        return ModelStreamError(
            f"The model server at {self._where} ended its answer before finishing it; "
            "the run stopped instead of using a partial answer.",
            usage=answer.usage,
        )

    def _broken(self, why: str, answer: StreamedAnswer) -> ModelStreamError:
        # The answer had begun: the SDK does not retry, and a partial answer is no answer.
        return ModelStreamError(
            f"The model server at {self._where} {why} in the middle of its answer; the run "
            "stopped instead of using a partial answer.",
            usage=answer.usage,
        )

    def _explain(self, exc: openai.APIError) -> ModelError:
        """One sentence for a call the SDK gave up on before the answer began."""
        where = self._where
        if isinstance(exc, openai.AuthenticationError):
            return ModelConfigError(
                f"The model server at {where} rejected the API key (401): set a valid key with "
                "OPENAI_API_KEY or the editor's 'Set API Key' command."
            )
        if isinstance(exc, openai.NotFoundError):
            return ModelConfigError(
                f"The model {self._model!r} is not available at {where} (404): set the model "
                "setting to one the server lists."
            )
        if isinstance(exc, openai.RateLimitError):
            return ModelError(
                f"The model server at {where} kept answering 'rate limited' (429) after retries; "
                "wait and run again, or lower the number of parallel runs."
            )
        if isinstance(exc, openai.APITimeoutError):
            return ModelError(f"The model server at {where} did not answer in time (timeout).")
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(
                f"Cannot reach the model server at {where}: check the base URL and that it runs."
            )
        if isinstance(exc, openai.APIStatusError):
            # The SDK retries 408, 409 and 5xx only; other statuses failed at once.
            code = exc.status_code
            retried = " after retries" if code in (408, 409) or code >= 500 else ""
            body = exc.body if isinstance(exc.body, dict) else {}
            detail = str(body.get("message") or exc.message)
            return ModelError(
                f"The model server at {where} failed with HTTP {code}{retried}: {_short(detail)}"
            )
        return ModelStreamError(
            f"The model server at {where} sent an answer that broke off: {_short(str(exc))}"
        )


async def _flushing(
    reads: AsyncGenerator[bytes, None], answer: StreamedAnswer
) -> AsyncGenerator[bytes, None]:
    """`reads`, flushing `answer`'s text each time the decoder has used one and asks for more."""
    try:
        async for data in reads:
            yield data
            answer.flush()
    finally:
        await reads.aclose()


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows `[DONE]` (the body's end, normally at once) so HTTP/1.1 can reuse the
    connection; a server that goes on sending is cut off after a moment."""
    with contextlib.suppress(TimeoutError, httpx2.RequestError, anyio.EndOfStream):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in chunks:
                pass


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
