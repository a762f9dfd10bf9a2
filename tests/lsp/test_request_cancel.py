"""`agentls.lsp.request_cancel` is the one place that reaches into pygls's private request
bookkeeping; these tests pin what it relies on, so a pygls upgrade that changes it fails here
(tests/lsp/test_progress.py checks the behaviour end to end over stdio)."""

from __future__ import annotations

import asyncio

from pygls.lsp.server import LanguageServer

from agentls.lsp.request_cancel import current_request_future, on_request_cancelled


def handling(server: LanguageServer, msg_id: str) -> asyncio.Future[None]:
    """Make the server look as it does inside the handler of request `msg_id`."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    server.protocol._ctx_msg_id.set(msg_id)
    server.protocol._request_futures[msg_id] = future
    return future


async def test_the_callback_runs_when_the_client_cancels_the_request() -> None:
    server = LanguageServer("t", "v1")
    request = handling(server, "req-1")
    calls: list[str] = []

    assert on_request_cancelled(server, lambda: calls.append("cancelled"))
    request.cancel()
    await asyncio.sleep(0)

    assert calls == ["cancelled"]


async def test_a_request_that_completes_does_not_call_back() -> None:
    server = LanguageServer("t", "v1")
    request = handling(server, "req-2")
    calls: list[str] = []

    on_request_cancelled(server, lambda: calls.append("cancelled"))
    request.set_result(None)
    await asyncio.sleep(0)

    assert calls == []


async def test_outside_a_request_it_says_it_cannot_tell() -> None:
    server = LanguageServer("t", "v1")

    assert current_request_future(server) is None
    assert not on_request_cancelled(server, lambda: None)
