"""Invalid JSON-RPC requests get the JSON-RPC error for their id, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.lsp.raw_stdio import RawServer

INVALID_REQUEST = -32600
INVALID_PARAMS = -32602


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RawServer]:
    with RawServer(tmp_path) as raw:
        yield raw


def list_agents(server: RawServer, msg_id: Any) -> dict[str, Any]:
    return server.request(
        msg_id, "workspace/executeCommand", {"command": "agentls.listAgents", "arguments": []}
    )


def test_a_request_without_a_method_is_answered_invalid_request(server: RawServer) -> None:
    server.send({"jsonrpc": "2.0", "id": 7})
    answer = server.answer(7)
    assert answer["error"]["code"] == INVALID_REQUEST
    assert "method" in answer["error"]["message"]
    assert list_agents(server, 8)["result"]


def test_params_that_are_a_string_are_answered_invalid_params(server: RawServer) -> None:
    answer = server.request(9, "workspace/executeCommand", "x")
    assert answer["error"]["code"] == INVALID_PARAMS
    assert "params" in answer["error"]["message"]
    assert list_agents(server, 10)["result"]


def test_params_of_the_wrong_shape_are_answered_invalid_params(server: RawServer) -> None:
    answer = server.request(11, "workspace/executeCommand", {"command": 5, "arguments": "no"})
    assert answer["error"]["code"] == INVALID_PARAMS
    assert list_agents(server, 12)["result"]


def test_a_json_rpc_1_request_is_answered_invalid_request(server: RawServer) -> None:
    server.send({"jsonrpc": "1.0", "id": 13, "method": "workspace/executeCommand", "params": {}})
    answer = server.answer(13)
    assert answer["error"]["code"] == INVALID_REQUEST
    assert "2.0" in answer["error"]["message"]
    assert list_agents(server, 14)["result"]


def test_a_request_without_jsonrpc_is_answered_invalid_request(server: RawServer) -> None:
    server.send({"id": 15, "method": "workspace/executeCommand", "params": {}})
    assert server.answer(15)["error"]["code"] == INVALID_REQUEST


def test_a_method_that_is_not_a_string_is_answered_invalid_request(server: RawServer) -> None:
    server.send({"jsonrpc": "2.0", "id": 16, "method": ["agentls.listAgents"]})
    assert server.answer(16)["error"]["code"] == INVALID_REQUEST
    assert list_agents(server, 17)["result"]


PARSE_ERROR = -32700


@pytest.mark.parametrize(
    "body",
    [b'{"jsonrpc": "2.0", "id": 9, "method": ', b"\xff\xfe not utf-8", b"[1, 2"],
    ids=["cut-short", "not-utf8", "unclosed-array"],
)
def test_a_body_that_is_not_json_is_answered_parse_error(server: RawServer, body: bytes) -> None:
    # The id cannot be read from such a body, so the answer carries id null (JSON-RPC 2.0, 5.1).
    server.send_bytes(body)
    answer = server.answer(None)
    assert "id" in answer and answer["id"] is None  # the member is required, not just absent
    assert answer["error"]["code"] == PARSE_ERROR
    assert "not valid JSON" in answer["error"]["message"]
    assert list_agents(server, 10)["result"]
    # One line in the log says what was wrong; no traceback of the reader.
    log = server.stderr()
    assert "not valid JSON" in log
    assert "Traceback" not in log
