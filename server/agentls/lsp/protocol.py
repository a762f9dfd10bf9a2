"""JSON-RPC framing rules pygls leaves out: every invalid request that carries an id is answered.
(Also: a plain handler may answer with a future, see `_send_handler_result`.)

pygls drops a request with no method, with params it cannot structure (`"params": "x"`), or with
`"jsonrpc": "1.0"` after logging it, so the client waits for ever. Here each gets the JSON-RPC
error the specification asks for: -32600 Invalid Request or -32602 Invalid params, with its id.
A body that is not JSON at all (cut short, not UTF-8) gets -32700 Parse error with id null.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.protocol import LanguageServerProtocol

from agentls.lsp.pygls_compat import request_futures, send_object

log = logging.getLogger("agentls.lsp")

VERSION = "2.0"
PARSE_ERROR = -32700


@dataclass(frozen=True)
class _Rejected:
    """A message that cannot be handled; answered with `code` when it carries an id."""

    id: int | str | None
    code: int
    message: str
    has_id: bool


def _usable_id(data: dict[str, Any]) -> int | str | None:
    value = data.get("id")
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


class AgentProtocol(LanguageServerProtocol):
    """pygls's LSP protocol, answering invalid requests instead of dropping them."""

    # Answers a message itself instead of handling it (after `shutdown`: lifecycle.py); True
    # when it did.
    refuse: Callable[[Any], bool] | None = None

    def structure_message(self, data: dict[str, Any]) -> Any:
        # Called for every JSON object in a message, innermost first; only a message has "jsonrpc".
        if "jsonrpc" not in data:
            return data
        has_id = "id" in data
        rejected = self._invalid(data)
        if rejected is not None:
            return rejected
        try:
            return super().structure_message(data)
        except Exception as exc:
            method = data.get("method")
            detail = f"invalid params of {method}" if method else "invalid message"
            cause = exc.__cause__ or exc
            return _Rejected(
                _usable_id(data),
                JsonRpcInvalidParams.CODE,
                f"{detail}: {_first_line(cause)}",
                has_id,
            )

    def _invalid(self, data: dict[str, Any]) -> _Rejected | None:
        has_id = "id" in data
        msg_id = _usable_id(data)
        code = JsonRpcInvalidRequest.CODE
        if data.get("jsonrpc") != VERSION:
            return _Rejected(
                msg_id, code, f"'jsonrpc' must be \"2.0\", got {data.get('jsonrpc')!r}", has_id
            )
        if has_id and msg_id is None and data.get("id") is not None:
            return _Rejected(None, code, "'id' must be a number or a string", True)
        method = data.get("method")
        if "method" in data and not isinstance(method, str):
            return _Rejected(msg_id, code, "'method' must be a string", has_id)
        if has_id and "method" not in data and "result" not in data and "error" not in data:
            return _Rejected(msg_id, code, "a request needs a 'method'", True)
        params = data.get("params")
        if "method" in data and params is not None and not isinstance(params, dict | list):
            return _Rejected(
                msg_id,
                JsonRpcInvalidParams.CODE,
                f"'params' of {method} must be an object or an array, got {type(params).__name__}",
                has_id,
            )
        return None

    def handle_message(self, message: Any) -> None:
        if self.refuse is not None and self.refuse(message):
            return
        if isinstance(message, _Rejected):
            self._reject(message)
        elif isinstance(message, dict):  # a top-level object without "jsonrpc"
            self._reject(
                _Rejected(
                    _usable_id(message),
                    JsonRpcInvalidRequest.CODE,
                    "'jsonrpc' must be \"2.0\"",
                    "id" in message,
                )
            )
        elif not hasattr(message, "jsonrpc"):  # an array, a number, a string
            self._reject(
                _Rejected(None, JsonRpcInvalidRequest.CODE, "expected a JSON-RPC object", True)
            )
        else:
            super().handle_message(message)

    def _send_handler_result(self, future: Any, *, msg_id: Any) -> None:
        """pygls's answer to a request; a plain handler may return an asyncio future instead of a
        result (code actions before the agents load), answered when it completes and cancellable
        like a coroutine handler's task."""
        if not future.cancelled() and future.exception() is None:
            pending = future.result()
            if isinstance(pending, asyncio.Future):
                request_futures(self)[msg_id] = pending  # as pygls does
                pending.add_done_callback(partial(self._send_handler_result, msg_id=msg_id))
                return
        super()._send_handler_result(future, msg_id=msg_id)

    def answer_parse_error(self, exc: Exception) -> bool:
        """Answer a body pygls could not decode (its reader hands the error to the server's
        error handler); True when `exc` was such an error."""
        if not isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
            return False
        self._reject(
            _Rejected(
                None, PARSE_ERROR, f"the message body is not valid JSON: {_first_line(exc)}", True
            )
        )
        return True

    def _reject(self, rejected: _Rejected) -> None:
        log.warning("invalid JSON-RPC message: %s", rejected.message)
        if not rejected.has_id:
            return  # an invalid notification has nobody waiting for an answer
        # Written as a plain object: pygls's serializer leaves out a null id, and JSON-RPC 2.0
        # requires the member (`"id": null` when the request's id could not be read).
        send_object(
            self,
            {
                "jsonrpc": VERSION,
                "id": rejected.id,
                "error": {"code": rejected.code, "message": rejected.message},
            },
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
