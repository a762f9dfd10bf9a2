"""The token use of one prompt turn, sent as the prompt response's `usage`.

A turn's runs may delegate to child agentls processes whose model calls this process never sees;
all of them write the workspace's audit trail, where each run's closing event holds the run's
own usage. The turn's use is the sum over every run in the trees of the turn's runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from acp.schema import Usage as AcpUsage

from agentls.core.audit import AuditStore
from agentls.core.events import TERMINAL_KINDS, Usage
from agentls.core.runtime import AgentRuntime

log = logging.getLogger(__name__)


async def turn_usage(runtime: AgentRuntime, roots: Iterable[str]) -> AcpUsage | None:
    """What the runs `roots` and every run below them used; None when it cannot be told."""
    roots = list(roots)
    spent = Usage()
    if roots and runtime.audit is not None:
        try:
            spent = await asyncio.to_thread(_spent, runtime.audit, roots)
        except Exception:  # the answer stands without it; the audit store reports its own faults
            log.warning("the turn's token use could not be read", exc_info=True)
            return None
    return AcpUsage(
        total_tokens=spent.total,
        input_tokens=spent.input_tokens,
        output_tokens=spent.output_tokens,
        thought_tokens=spent.reasoning_tokens,
        cached_read_tokens=spent.cached_input_tokens,
    )


def _spent(audit: AuditStore, roots: list[str]) -> Usage:
    """Blocking: reads the audit trail."""
    by_run: dict[str, Usage] = {}
    for root in roots:
        for event in audit.query(run_id=root, descendants=True, kinds=TERMINAL_KINDS):
            by_run[event.run_id] = event.usage
    return sum(by_run.values(), Usage())
