"""Exact prompt counts for OpenAI model names (bpe-openai ships the tokenizers offline).

The count is still an upper bound of what the provider bills, and far below the byte bound, so a
budget no longer refuses runs that fit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.rig.scripted_openai import ScriptedOpenAI, Text, _prompt_tokens

from agentls.cli import main
from agentls.core.llm import ChatRequest, ModelSettings, ToolSpec, utf8_prompt_bound
from agentls.core.llm_openai import OpenAIChatModel
from agentls.core.prompt_tokens import encoder_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("COLUMNS", "200")
    with ScriptedOpenAI(models=("gpt-4o-mini",)) as s:
        yield s


def model(name: str) -> OpenAIChatModel:
    return OpenAIChatModel(ModelSettings(model=name, base_url="http://127.0.0.1:9/v1"))


def cli(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def test_a_small_prompt_no_longer_needs_a_budget_four_times_its_size(
    server: ScriptedOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `explain` on a two-line file: ~80 real tokens, which the byte bound counted as 400+.
    (tmp_path / "two.py").write_text("def twice(x):\n    return 2 * x\n")
    server.enqueue(Text("It doubles its argument.", completion_tokens=40))
    status = cli(
        "--workspace", str(tmp_path), "run", "explain", "--file", str(tmp_path / "two.py"),
        "--base-url", server.url, "--model", "gpt-4o-mini", "--budget", "450",
    )  # fmt: skip
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "It doubles its argument." in out.out
    billed = _prompt_tokens(server.requests[0])
    assert billed < 120  # the run cost what it costs, and it fit


def test_a_25_kb_file_reserves_close_to_its_real_count() -> None:
    source = (ROOT / "server" / "agentls" / "core" / "runtime.py").read_text()
    request = ChatRequest(
        messages=[
            {"role": "system", "content": "You review code."},
            {"role": "user", "content": f"Goal: review\n```python\n{source}\n```"},
        ],
        max_tokens=1024,
    )
    exact = model("gpt-4o-mini").prompt_token_bound(request)
    billed = _prompt_tokens({"model": "gpt-4o-mini", "messages": request.messages})
    assert billed <= exact <= billed + 64
    assert utf8_prompt_bound(request) > 3 * exact  # what it reserved before


def test_unknown_models_keep_the_byte_bound() -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "héllo " * 50}], max_tokens=10)
    assert model("my-local-llama").prompt_token_bound(request) == utf8_prompt_bound(request)


def test_the_encoder_is_loaded_once() -> None:
    assert encoder_for("gpt-4o-mini") is encoder_for("gpt-4o")
    assert encoder_for("gpt-4") is not None  # cl100k
    assert encoder_for("scripted-model") is None


TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200
) | st.sampled_from(["<|endoftext|>", "<|im_start|>user", "\r\n\t  ", "😀" * 9, "def f():\n  pass"])
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool"]), "content": TEXT}
)


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(MESSAGE, min_size=1, max_size=5),
    name=st.sampled_from(["gpt-4o-mini", "gpt-4"]),
    tool_text=st.none() | TEXT,
)
def test_the_exact_count_is_still_an_upper_bound_of_the_billed_prompt(
    messages: list[dict[str, str]], name: str, tool_text: str | None
) -> None:
    tools = (
        [ToolSpec("read_file", tool_text, {"type": "object", "properties": {}})]
        if tool_text is not None
        else []
    )
    request = ChatRequest(messages=messages, max_tokens=16, tools=tools)
    bound = model(name).prompt_token_bound(request)
    body = {"model": name, "messages": messages, "tools": [t.to_openai() for t in tools] or None}
    assert bound >= _prompt_tokens(body)
    assert bound <= utf8_prompt_bound(request) + 16 * len(tools)


class CountingEncoder:
    """The real o200k encoder, recording the texts it is asked to encode."""

    def __init__(self) -> None:
        real = encoder_for("gpt-4o-mini")
        assert real is not None
        self._real = real
        self.encoded: list[str] = []

    def encode_ordinary(self, text: str) -> list[int]:
        self.encoded.append(text)
        return self._real.encode_ordinary(text)


def test_a_later_turn_tokenizes_only_its_new_text() -> None:
    # Each turn resends the whole conversation; the tokenizer holds the GIL while it encodes, so a
    # long file counted again on every turn would stall the server once per turn.
    from agentls.core.prompt_tokens import counted_prompt_bound

    encoder = CountingEncoder()
    source = (ROOT / "server" / "agentls" / "core" / "runtime.py").read_text()
    first = [{"role": "user", "content": f"Goal: review\n{source}"}]
    later = [*first, {"role": "assistant", "content": "Looking. " * 100}]
    one = counted_prompt_bound(ChatRequest(messages=first, max_tokens=1), encoder)
    encoder.encoded.clear()
    two = counted_prompt_bound(ChatRequest(messages=later, max_tokens=1), encoder)
    assert not any(source in text for text in encoder.encoded)
    assert two > one  # and the count is still the whole conversation's


def test_the_count_cache_is_bounded_by_the_characters_it_keeps() -> None:
    from agentls.core.prompt_tokens import _CountCache

    encoder = CountingEncoder()
    cache = _CountCache(max_chars=10_000)
    texts = [f"{n} " + "word " * 600 for n in range(10)]  # ~3 KB each
    counts = [cache.count(encoder, text) for text in texts]
    assert cache.chars <= 10_000
    assert counts == [len(encoder._real.encode_ordinary(t)) for t in texts]
    encoder.encoded.clear()
    cache.count(encoder, texts[-1])  # recent: kept
    cache.count(encoder, texts[0])  # oldest: evicted, counted again
    assert encoder.encoded == [texts[0]]
