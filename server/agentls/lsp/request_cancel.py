"""`$/cancelRequest` for the command being handled.

pygls cancels only the request's outer future for executeCommand, not the handler's task, and
exposes that future only in the protocol's private table (reached through pygls_compat);
`on_request_cancelled` wraps the access, and tests/lsp/test_request_cancel.py pins the behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentls.lsp.pygls_compat import request_futures

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer


def current_request_future(ls: LanguageServer) -> Any | None:
    """The future of the request whose handler is running (pygls keeps its id context-local)."""
    msg_id = ls.protocol.msg_id
    if msg_id is None:
        return None
    return request_futures(ls.protocol).get(msg_id)


def on_request_cancelled(ls: LanguageServer, callback: Callable[[], object]) -> bool:
    """Call `callback` when the client cancels the request being handled; False if it cannot tell.

    Call it before the handler's first `await`, so a cancel that arrives during that await counts.
    """
    future = current_request_future(ls)
    if future is None:
        return False
    future.add_done_callback(lambda f: callback() if f.cancelled() else None)
    return True
