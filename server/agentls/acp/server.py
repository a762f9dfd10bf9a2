"""Runs the ACP agent on this process's stdin/stdout until the client closes the connection."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import cast

from agentls.acp.trust import TrustMode
from agentls.core.engine import EngineSettings
from agentls.core.streams import is_pipe_like


def serve(
    settings: EngineSettings,
    *,
    default_agent: str | None = None,
    trust: TrustMode = TrustMode.SETTINGS,
) -> None:
    # stdout carries the protocol: every log line goes to stderr, which editors show as the log.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="agentls acp: %(message)s")
    asyncio.run(_serve(settings, default_agent, trust))


async def _serve(settings: EngineSettings, default_agent: str | None, trust: TrustMode) -> None:
    import acp
    from agentls.acp.agent import AgentlsAcpAgent

    agent = AgentlsAcpAgent(settings, default_agent, trust)
    try:
        # session/close is routed by the SDK only with its unstable methods enabled.
        # The SDK's Agent protocol lists every method; it routes only those an agent defines.
        streams = await _file_streams()
        await acp.run_agent(
            cast(acp.Agent, agent),
            *streams,
            use_unstable_protocol=True,
        )
    finally:
        await agent.aclose()


async def _file_streams() -> tuple[object, object] | tuple[()]:
    """Streams for a stdin or stdout the event loop cannot watch (`/dev/null`, a regular file),
    which the SDK's own streams refuse with a PermissionError traceback; () when both can be
    loop transports and the SDK's defaults serve."""
    if is_pipe_like(sys.stdin.buffer) and is_pipe_like(sys.stdout.buffer):
        return ()
    # The SDK's thread-fed streams (what it uses where stdin cannot be watched, on Windows):
    # end of input reads as the end of the connection, so the agent exits cleanly.
    from acp.core import DEFAULT_STDIO_BUFFER_LIMIT_BYTES
    from acp.stdio import _windows_stdio_streams

    reader, writer = await _windows_stdio_streams(
        asyncio.get_running_loop(), limit=DEFAULT_STDIO_BUFFER_LIMIT_BYTES
    )
    return writer, reader
