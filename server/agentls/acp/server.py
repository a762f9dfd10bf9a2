"""Runs the ACP agent on this process's stdin/stdout until the client closes the connection."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import cast

from agentls.core.engine import EngineSettings


def serve(settings: EngineSettings, *, default_agent: str | None = None) -> None:
    # stdout carries the protocol: every log line goes to stderr, which editors show as the log.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="agentls acp: %(message)s")
    asyncio.run(_serve(settings, default_agent))


async def _serve(settings: EngineSettings, default_agent: str | None) -> None:
    import acp
    from agentls.acp.agent import AgentlsAcpAgent

    agent = AgentlsAcpAgent(settings, default_agent)
    try:
        # session/close is routed by the SDK only with its unstable methods enabled.
        # The SDK's Agent protocol lists every method; it routes only those an agent defines.
        await acp.run_agent(cast(acp.Agent, agent), use_unstable_protocol=True)
    finally:
        await agent.aclose()
