"""Every private name agentls takes from a library exists in the installed version, so an upgrade
that moves one fails here, in CI, and not in a user's editor. Each library's private use lives in
one module of ours: lsp/pygls_compat.py (pygls), core/llm_openai.py (openai's SSE decoder),
core/mcp_client/stdio.py (the MCP SDK's stdio helpers), mcp_server/sdk_compat.py (the MCP SDK's request
channel), acp/server.py (the ACP SDK's thread-fed streams).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

from agentls.lsp.pygls_compat import PRIVATE_NAMES


def _owner(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("owner", "name"), PRIVATE_NAMES, ids=lambda v: str(v))
def test_each_private_name_of_pygls_is_there(owner: str, name: str) -> None:
    cls = _owner(owner)
    assert isinstance(cls, type)
    if hasattr(cls, name):
        assert callable(getattr(cls, name))
        return
    # An attribute set in __init__ (the request table, the stop event): named in its source.
    assert f"self.{name}" in inspect.getsource(cls.__init__), f"{owner}.{name} is gone"


def test_pygls_protocol_sends_a_dict_as_it_is() -> None:
    # send_object relies on _send_data json-dumping a plain dict (the null id must survive).
    source = inspect.getsource(_owner("pygls.protocol.JsonRPCProtocol")._send_data)  # type: ignore[attr-defined]
    assert "json.dumps(data" in source


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("openai._streaming", ["SSEDecoder", "ServerSentEvent"]),
        ("mcp.client._transport", ["TransportStreams"]),
        (
            "mcp.client.stdio",
            [
                "_WRITER_FLUSH_TIMEOUT",
                "_aclose_all",
                "_create_platform_compatible_process",
                "_drain_stdout",
                "_get_executable_command",
                "_stop_server_process",
            ],
        ),
        ("acp.stdio", ["_windows_stdio_streams"]),
    ],
)
def test_each_private_name_of_the_sdks_is_there(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    assert [n for n in names if not hasattr(loaded, n)] == []


def test_the_mcp_servers_request_channel_is_where_sdk_compat_looks() -> None:
    # mcp_server/sdk_compat.py reads `session._request_outbound.cancel_requested` with getattr: if the SDK
    # moved it, a host's cancel would silently read as a closed connection.
    from mcp.server.session import ServerSession

    assert "self._request_outbound = " in inspect.getsource(ServerSession.__init__)
    dispatcher = importlib.import_module("mcp.shared.dispatcher")
    assert any(
        isinstance(getattr(cls, "cancel_requested", None), property)
        for cls in vars(dispatcher).values()
        if isinstance(cls, type)
    )
