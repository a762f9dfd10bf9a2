"""Broken workspace state (ledger, audit trail) as the editor sees it: a message and an error.

A request that needs the engine while `.agentls/` is unusable answers RequestFailed with the file
and what to do; the user sees the same sentence once as a window/showMessage error. The engine is
built again on the next request, so `agentls doctor --repair` fixes it without a restart.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from agentls.core.state_check import StateError

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer

log = logging.getLogger("agentls.lsp")

_shown: weakref.WeakKeyDictionary[AgentLanguageServer, set[str]] = weakref.WeakKeyDictionary()


def state_unavailable(ls: AgentLanguageServer, exc: StateError) -> JsonRpcException:
    """Tell the user (once per distinct problem) and return the error to answer the request with."""
    message = f"agentls cannot use its workspace state: {exc}"
    shown = _shown.setdefault(ls, set())
    if message not in shown:
        shown.add(message)
        log.error(message)
        ls.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=message)
        )
    return JsonRpcException(message, code=types.LSPErrorCodes.RequestFailed.value)
