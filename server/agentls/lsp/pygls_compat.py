"""Every private name of pygls agentls relies on, in one place.

pygls 2 keeps a few things we need out of its public API: the table of request futures (to cancel
the request being handled, and the ones still pending at shutdown), sending a response or a raw
object, and the stop event its reader loop watches. Each access goes through a function here, and
tests/test_private_apis.py checks every name against the installed pygls, so an upgrade that moves
one fails in CI and not at a user's. (The protocol subclass in protocol.py also overrides the
private hook `_send_handler_result`; the same test pins it.)
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lsprotocol.types import ResponseError
    from pygls.lsp.server import LanguageServer
    from pygls.protocol import JsonRPCProtocol

# The private names used, for the test that pins them: (owner, attribute).
PRIVATE_NAMES = (
    ("pygls.protocol.JsonRPCProtocol", "_request_futures"),
    ("pygls.protocol.JsonRPCProtocol", "_send_response"),
    ("pygls.protocol.JsonRPCProtocol", "_send_data"),
    ("pygls.protocol.JsonRPCProtocol", "_send_handler_result"),
    ("pygls.server.JsonRPCServer", "_stop_event"),
)


def request_futures(protocol: JsonRPCProtocol) -> dict[Any, Any]:
    """The protocol's table of pending requests: message id -> the future answering it."""
    futures = getattr(protocol, "_request_futures", None)
    return futures if isinstance(futures, dict) else {}


def send_error(protocol: JsonRPCProtocol, msg_id: Any, error: ResponseError) -> None:
    """Answer request `msg_id` with `error`."""
    protocol._send_response(msg_id, None, error)


def send_object(protocol: JsonRPCProtocol, message: dict[str, Any]) -> None:
    """Write `message` as it is (pygls's serializer would leave out a null `id`)."""
    protocol._send_data(message)


def stop_event(server: LanguageServer) -> threading.Event:
    """The event pygls's reader loop stops on, created when the server does not have one yet."""
    if server._stop_event is None:
        server._stop_event = threading.Event()
    return server._stop_event
