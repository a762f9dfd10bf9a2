"""executeCommand with random argument shapes, over the server's real stdio: every request gets an
answer (a result or an InvalidParams error naming the command), never an internal error, and the
server still answers listAgents afterwards."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.lsp.raw_stdio import RawServer

COMMANDS = [
    "agentls.delegate",
    "agentls.delegateParallel",
    "agentls.createAgent",
    "agentls.cancel",
    "agentls.listAgents",
    "agentls.budget",
    "agentls.audit",
]
KEYS = [
    "agent",
    "goal",
    "uri",
    "range",
    "budget",
    "tasks",
    "maxParallel",
    "prompt",
    "save",
    "run",
    "runId",
    "action",
    "limit",
    "start",
    "end",
    "line",
    "character",
]
INTERNAL_ERROR = -32603

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["explain", "get", "set", "reset", "file:///nope.py"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
arguments = st.lists(
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5) | json_values, max_size=2
)


def test_random_command_arguments_are_answered_and_the_server_keeps_serving(
    tmp_path: Path,
) -> None:
    # A delegation that happens to be valid meets a closed port, not a model.
    server_settings = {"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "sk-test", "model": "m"}
    ids = itertools.count(1)
    with RawServer(tmp_path, server_settings) as server:

        @settings(
            max_examples=80,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(st.sampled_from(COMMANDS), arguments)
        def one(command: str, args: list[Any]) -> None:
            answer = server.request(
                next(ids), "workspace/executeCommand", {"command": command, "arguments": args}
            )
            error = answer.get("error")
            if error is not None:
                assert error["code"] != INTERNAL_ERROR, error
                assert error["message"]

        one()
        agents = server.request(
            "last", "workspace/executeCommand", {"command": "agentls.listAgents"}
        )
        assert "explain" in [a["name"] for a in agents["result"]]
