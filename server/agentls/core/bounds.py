"""The largest numbers and texts agentls accepts, defined once for every front end.

Each bound sits far above any real use and far below what breaks: SQLite stores integers in 64
bits (up to 2^63 - 1, ~9.2 * 10^18), and a sum that leaves that range silently turns into a float.

- `MAX_TOKENS` bounds a limit or a budget a user gives (CLI, LSP, MCP, ACP) and every count the
  ledger stores: 10^15 tokens is more than the world's models serve in a year, and 9,000 times
  below SQLite's largest integer.
- `MAX_CALL_TOKENS` bounds each count a provider reports for one model call (prompt, cached,
  output, reasoning): 10^8 is ten times the largest context window any model offers (10 million
  tokens), so no real call reaches it, and a ledger adding such calls needs millions of them to
  reach `MAX_TOKENS`. A report above it is nonsense (a bug or a hostile server), and so is a
  cached count above the prompt's: `call_usage_problem` says so, and the call's reservation is
  recorded in its place with a warning (metering.py), never a number that would break the ledger.
- `MAX_GOAL_CHARS` bounds the text of a goal (a prompt), checked before it is tokenized or sent:
  200,000 characters is ~50,000 tokens of prose, more than a person writes as an instruction and
  room for the context an agent panel attaches (20,000 characters) and a selection (60,000).
  The offline tokenizer refuses a text of a million characters or of more than 200,000 tokens
  (and spends seconds on a large one first); a goal under the bound that it still refuses is
  bounded by its UTF-8 bytes (llm_openai). The code an agent works on goes in its target, which
  has its own bound (`prompts.MAX_TARGET_CHARS`).
"""

from __future__ import annotations

from agentls.core.events import Usage

MAX_TOKENS = 10**15
# The longest wait or time limit a setting may ask for (budget.waitSeconds, mcpCallTimeout,
# runCommand.timeoutSeconds, `mcp call --timeout`): an hour.
MAX_SECONDS = 3600.0
MAX_CALL_TOKENS = 10**8
MAX_GOAL_CHARS = 200_000


def call_usage_problem(usage: Usage) -> str | None:
    """Why `usage` cannot be what one model call used, or None when it can."""
    parts = (
        ("prompt", usage.input_tokens),
        ("cached prompt", usage.cached_input_tokens),
        ("output", usage.output_tokens),
        ("reasoning", usage.reasoning_tokens),
    )
    for part, count in parts:
        if type(count) is not int or count < 0:
            return f"the model provider reported {count!r} {part} tokens, not a token count"
        if count > MAX_CALL_TOKENS:
            return (
                f"the model provider reported {count:,} {part} tokens for one call, more than "
                f"any model's context window (at most {MAX_CALL_TOKENS:,} a call)"
            )
    if usage.cached_input_tokens > usage.input_tokens:
        return (
            f"the model provider reported {usage.cached_input_tokens:,} cached prompt tokens, "
            f"more than the {usage.input_tokens:,} prompt tokens they are part of"
        )
    return None


def goal_problem(goal: str) -> str | None:
    """Why `goal` is refused before it is tokenized or sent, or None."""
    if len(goal) <= MAX_GOAL_CHARS:
        return None
    return (
        f"the goal is {len(goal):,} characters, more than the {MAX_GOAL_CHARS:,} a goal may have; "
        "shorten it (the code to work on goes in the target, a file or a selection)"
    )
