"""The attribute, span and metric names agentls exports: the GenAI semantic conventions, pinned.

The GenAI conventions are marked Development and their names move. agentls implements them as of
semantic conventions v1.44.0 (the last release before they moved to their own repository,
open-telemetry/semantic-conventions-genai, which has no tagged release yet); docs/telemetry.md
names this version. Everything agentls adds of its own is under `agentls.*`.
"""

from __future__ import annotations

from typing import Final

CONVENTIONS_VERSION: Final = "1.44.0"
SCHEMA_URL: Final = f"https://opentelemetry.io/schemas/{CONVENTIONS_VERSION}"
INSTRUMENTATION_NAME: Final = "agentls"

# Operations (span names are "<operation> <agent|model|tool>").
INVOKE_AGENT: Final = "invoke_agent"
CHAT: Final = "chat"
EXECUTE_TOOL: Final = "execute_tool"

OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
AGENT_NAME: Final = "gen_ai.agent.name"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"  # cached input included
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_TYPE: Final = "gen_ai.tool.type"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
TOKEN_TYPE: Final = "gen_ai.token.type"
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# agentls' own attributes.
RUN_ID: Final = "agentls.run.id"
RUN_DEPTH: Final = "agentls.run.depth"
RUN_PARENT_ID: Final = "agentls.run.parent_id"
RUN_STATUS: Final = "agentls.run.status"
RUN_TURNS: Final = "agentls.run.turns"
RUN_MODE: Final = "agentls.agent.mode"
USER: Final = "agentls.user"
WORKSPACE: Final = "agentls.workspace"
FRONT_END: Final = "agentls.front_end"
BUDGET_LIMIT: Final = "agentls.budget.limit"
BUDGET_REMAINING: Final = "agentls.budget.remaining"
BUDGET_RESERVED: Final = "agentls.budget.reserved"
# The call's cost in dollars (docs/pricing.md); the GenAI conventions define no cost attribute.
USAGE_COST_USD: Final = "agentls.usage.cost_usd"
BUDGET_SCOPE: Final = "agentls.budget.scope"
USAGE_ESTIMATED: Final = "agentls.usage.estimated"
TURN: Final = "agentls.turn"
EVENT_KIND: Final = "agentls.event.kind"
EVENT_ID: Final = "agentls.event.id"

# Metrics.
TOKEN_USAGE_METRIC: Final = "gen_ai.client.token.usage"
OPERATION_DURATION_METRIC: Final = "gen_ai.client.operation.duration"
BUDGET_USED_METRIC: Final = "agentls.budget.used"
BUDGET_LIMIT_METRIC: Final = "agentls.budget.limit"
# Bucket boundaries the conventions recommend for the two GenAI histograms.
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)

# Tool types: workspace tools and run_command run in-process ("function"); MCP tools, the child
# agentls included, are provided by another process ("extension").
MCP_TOOL_PREFIX: Final = "mcp__"


def tool_type(name: str) -> str:
    return "extension" if name.startswith(MCP_TOOL_PREFIX) else "function"


EMBEDDED_SUFFIX: Final = "(embedded)"


def provider_of(model: str) -> str:
    """The embedded model runs in llama.cpp; every other backend speaks OpenAI's Chat Completions."""
    return "llama_cpp" if model.endswith(EMBEDDED_SUFFIX) else "openai"
