"""ChatModel over any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, LiteLLM...).

The `openai` SDK does the HTTP, the retries with exponential backoff on 429/5xx (honouring
Retry-After) and the timeouts; this module turns its stream into a ChatResponse and its errors
into one sentence a user can act on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
from openai import AsyncOpenAI

from agentls.core.events import Usage
from agentls.core.llm import (
    ChatRequest,
    ChatResponse,
    ModelConfigError,
    ModelError,
    ModelSettings,
    ModelStreamError,
    OnDelta,
    ToolCallRequest,
    utf8_prompt_bound,
)
from agentls.core.prompt_tokens import counted_prompt_bound, encoder_for

DEFAULT_MODEL = "gpt-4o-mini"
# Local servers (Ollama, llama.cpp, vLLM without auth) accept any key but the SDK insists on one.
PLACEHOLDER_KEY = "not-needed"


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

    def prompt_token_bound(self, request: ChatRequest) -> int:
        """Exact for OpenAI model names (their tokenizer ships in bpe-openai), else the byte bound.

        Loads the tokenizer on first use (tens of ms): call it off the event loop.
        """
        encoder = encoder_for(self._model)
        if encoder is None:
            return utf8_prompt_bound(request)
        return counted_prompt_bound(request, encoder)

    def warm(self) -> None:
        """Do, on the calling (worker) thread, what the first call would otherwise do on the event
        loop: openai builds its resources on first access and the transport imports its socket
        backend on the first request (together ~30 ms); the tokenizer loads on first count."""
        import importlib

        _ = self._client.chat.completions
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
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage: Usage | None = None
        finish: str | None = None
        stream = None
        try:
            stream = await self._client.chat.completions.create(**self._arguments(request))
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = _usage_of(chunk.usage)
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                        if on_delta:
                            on_delta(delta.content)
                    for tc in delta.tool_calls or []:
                        slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        if tc.id:
                            slot["id"] = tc.id
                        if tc.function and tc.function.name:
                            slot["name"] += tc.function.name
                        if tc.function and tc.function.arguments:
                            slot["arguments"] += tc.function.arguments
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except openai.APIError as exc:
            raise self._explain(exc, streaming=stream is not None) from exc
        finally:
            if stream is not None:
                await stream.close()  # a cancelled or failed call frees its connection
        if finish is None:
            raise ModelStreamError(
                f"The model server at {self._where} ended its answer before finishing it; "
                "the run stopped instead of using a partial answer."
            )
        answer = "".join(text)
        if usage is None:
            # The server sent no usage (llama.cpp's server, some proxies): count the prompt as it
            # was reserved and the output by the byte bound, which never exceeds max_tokens (the
            # server stops there), so an estimate never commits more than the call reserved.
            output_bytes = len(answer.encode()) + sum(
                len((c["name"] + c["arguments"]).encode()) for c in calls.values()
            )
            usage = Usage(
                input_tokens=await asyncio.to_thread(self.prompt_token_bound, request),
                output_tokens=min(output_bytes, request.max_tokens),
                estimated=True,
            )
        tool_calls = [
            ToolCallRequest(id=c["id"] or f"call_{i}", name=c["name"], raw_arguments=c["arguments"])
            for i, c in sorted(calls.items())
        ]
        return ChatResponse(answer, tool_calls, usage, finish, self._model)

    def _explain(self, exc: openai.APIError, *, streaming: bool = False) -> ModelError:
        where = self._where
        if streaming and isinstance(exc, openai.APIConnectionError):
            # The answer had begun: the SDK does not retry, and a partial answer is no answer.
            timed_out = isinstance(exc, openai.APITimeoutError)
            why = "stopped sending (timeout)" if timed_out else "dropped the connection"
            return ModelStreamError(
                f"The model server at {where} {why} in the middle of its answer; the run "
                "stopped instead of using a partial answer."
            )
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


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _usage_of(raw: Any) -> Usage:
    prompt_details = getattr(raw, "prompt_tokens_details", None)
    completion_details = getattr(raw, "completion_tokens_details", None)
    return Usage(
        input_tokens=raw.prompt_tokens or 0,
        cached_input_tokens=(getattr(prompt_details, "cached_tokens", 0) or 0)
        if prompt_details
        else 0,
        output_tokens=raw.completion_tokens or 0,
        reasoning_tokens=(getattr(completion_details, "reasoning_tokens", 0) or 0)
        if completion_details
        else 0,
        estimated=False,
    )
