"""The ChatModel interface every backend implements, and how to reach a model (ModelSettings).

Backends: `llm_openai.OpenAIChatModel` (any OpenAI-compatible server) and
`llm_local.EmbeddedChatModel` (SmolLM2 in-process through llama-cpp-python); `model_choice.py`
picks one, importing it lazily so that nothing heavy loads before the first model call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agentls.core.events import Usage

if TYPE_CHECKING:
    from agentls.core.pricing import ModelPrice

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

    @property
    def own_price(self) -> ModelPrice | None:
        """What the backend itself knows a call costs (the embedded model: nothing), or None:
        then genai-prices' data decides (the user's `prices` setting wins over both)."""
        ...

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
