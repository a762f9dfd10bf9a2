"""Exact prompt token counts for models whose tokenizer ships offline (OpenAI's, via bpe-openai).

The budget reserves `prompt bound + max_tokens` before each call, so the bound must never be
below what the provider bills. With the model's own tokenizer the bound is the real count of every
message's role, content and name, plus a per-message and per-request allowance that covers the
chat template's tokens (OpenAI's adds 3 per message and 3 per request; agentls allows 8 and 16),
and the tool schemas and response schema as JSON (OpenAI renders them more compactly). Where no
tokenizer is known, `llm.utf8_prompt_bound` (one token per UTF-8 byte at most) stays the bound.

Loading an encoding takes ~60-300 ms: it happens once per encoding, on the thread that first
needs it (the runtime counts on a worker thread, never on the event loop).

The tokenizer holds the GIL while it encodes (~9 ms for 60 KB), and every turn of a run sends the
whole conversation again: counts of long texts are kept in a small cache bounded by the characters
it holds, so each turn tokenizes only what is new.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from functools import cache
from typing import Any, Protocol

from agentls.core.llm import PER_MESSAGE_OVERHEAD, PER_REQUEST_OVERHEAD, ChatRequest

# Allowance per tool schema and for the response schema's wrapper in the rendered prompt.
PER_SCHEMA_OVERHEAD = 16


class Encoder(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


_load_lock = threading.Lock()


@cache
def _encoder_by_name(encoding_name: str) -> Encoder:
    import bpe_openai

    return bpe_openai.get_encoding(encoding_name)


def encoder_for(model: str) -> Encoder | None:
    """The offline tokenizer of an OpenAI model name (o200k, cl100k, ...), or None if unknown."""
    name = _encoding_name(model)
    if name is None:
        return None
    with _load_lock:  # parallel first calls load it once
        try:
            return _encoder_by_name(name)
        except Exception:  # an encoding the wheel lacks or cannot load: fall back to bytes
            return None


@cache
def _encoding_name(model: str) -> str | None:
    try:
        import bpe_openai
    except ImportError:
        return None
    try:
        return str(bpe_openai.encoding_name_for_model(model))
    except (ValueError, KeyError, LookupError):
        # Unknown model, or known but without an encoding in the wheel.
        return None


# Texts shorter than this are counted afresh (cheaper than the bookkeeping); longer ones are kept
# until the cache holds more than CACHE_MAX_CHARS characters, least recently used first out.
CACHE_MIN_CHARS = 512
CACHE_MAX_CHARS = 4_000_000


class _CountCache:
    """Token counts of long texts per encoder, bounded by the characters of the texts it keeps."""

    def __init__(self, max_chars: int = CACHE_MAX_CHARS) -> None:
        self._max_chars = max_chars
        self._chars = 0
        self._counts: OrderedDict[tuple[int, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, encoder: Encoder, text: str) -> int:
        if len(text) < CACHE_MIN_CHARS or len(text) > self._max_chars:
            return len(encoder.encode_ordinary(text))
        key = (id(encoder), text)  # encoders are loaded once and live as long as the process
        with self._lock:
            cached = self._counts.get(key)
            if cached is not None:
                self._counts.move_to_end(key)
                return cached
        tokens = len(encoder.encode_ordinary(text))
        with self._lock:
            if key not in self._counts:
                self._counts[key] = tokens
                self._chars += len(text)
                while self._chars > self._max_chars:
                    (_, old), _ = self._counts.popitem(last=False)
                    self._chars -= len(old)
        return tokens

    @property
    def chars(self) -> int:
        return self._chars


_cache = _CountCache()


def counted_prompt_bound(request: ChatRequest, encoder: Encoder) -> int:
    """Prompt tokens of `request` with the model's tokenizer, plus the template's allowance."""

    def count(text: str) -> int:
        return _cache.count(encoder, text)

    total = PER_REQUEST_OVERHEAD
    for message in request.messages:
        total += PER_MESSAGE_OVERHEAD + _message_tokens(message, count)
    for tool in request.tools:
        total += PER_SCHEMA_OVERHEAD + count(json.dumps(tool.to_openai(), ensure_ascii=False))
    if request.json_schema is not None:
        total += PER_SCHEMA_OVERHEAD + count(json.dumps(request.json_schema, ensure_ascii=False))
    return total


def _message_tokens(message: dict[str, Any], count: Any) -> int:
    tokens = 0
    for key, value in message.items():
        if value is None:
            continue
        if key in ("role", "name", "tool_call_id"):
            tokens += count(str(value))
        elif key == "content":
            tokens += _content_tokens(value, count)
        else:  # tool_calls and anything else: as the JSON that carries it
            tokens += count(json.dumps(value, ensure_ascii=False))
    return tokens


def _content_tokens(content: Any, count: Any) -> int:
    if isinstance(content, str):
        return int(count(content))
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                total += PER_MESSAGE_OVERHEAD + count(str(part.get("text", "")))
            else:
                total += count(json.dumps(part, ensure_ascii=False))
        return total
    return int(count(json.dumps(content, ensure_ascii=False)))
