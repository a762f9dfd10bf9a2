"""agentls.delegateParallel: many runs at once with a parent progress ("3/5 done", tokens) beside
each run's own; cancelling the parent or the request cancels the group, a run's own progress
cancels only that run.
"""

from __future__ import annotations

import uuid
from typing import Any

from lsprotocol import types

from agentls.core.events import new_id
from agentls.core.parallel import GroupProgress, ParallelGroup, ParallelTask
from agentls.core.parallel import delegate_parallel as run_group
from agentls.lsp import wire
from agentls.lsp.arguments import DelegateParallelArgs
from agentls.lsp.commands import (
    DELEGATE_PARALLEL,
    known_agent,
    link_request_cancel,
    run_result,
    target_for,
)
from agentls.lsp.edits import applier
from agentls.lsp.server import AgentLanguageServer


async def _parent_progress(ls: AgentLanguageServer, title: str, group: ParallelGroup) -> str | None:
    window = ls.client_capabilities.window
    if not (window and window.work_done_progress):
        return None
    token = f"agentls-group-{uuid.uuid4().hex}"
    try:
        await ls.work_done_progress.create_async(token)
    except Exception:
        return None
    ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=True))
    future = ls.work_done_progress.tokens.get(token)
    if future is not None:
        future.add_done_callback(lambda f: group.cancel(ls.runtime) if f.cancelled() else None)
    return token


async def delegate_parallel(ls: AgentLanguageServer, args: DelegateParallelArgs) -> dict[str, Any]:
    runtime = ls.runtime
    tasks: list[ParallelTask] = []
    versions: dict[str, dict[str, int | None]] = {}
    for i, wanted in enumerate(args.tasks):
        command = f"{DELEGATE_PARALLEL} tasks[{i}]"
        known_agent(ls, command, wanted.agent)
        target = None
        if wanted.uri:
            target, versions[str(i)] = target_for(ls, command, wanted.uri, wanted.range)
        tasks.append(
            ParallelTask(
                agent=wanted.agent,
                goal=wanted.goal,
                target=target,
                budget=wanted.budget,
                run_id=new_id(),
            )
        )
    group = ParallelGroup(new_id(), [t.run_id for t in tasks])
    # Linked before the progress round trips, so a cancel that arrives meanwhile still counts.
    link_request_cancel(ls, lambda: group.cancel(runtime))
    token = await _parent_progress(ls, f"agentls: {len(tasks)} agents in parallel", group)
    assert ls.bridge is not None
    for t in tasks:
        d = runtime.resolve_agent(t.agent)
        await ls.bridge.begin_progress(t.run_id, f"{d.name}: {t.goal or d.description}")

    def on_progress(p: GroupProgress) -> None:
        if token:
            ls.work_done_progress.report(
                token,
                types.WorkDoneProgressReport(
                    message=f"{p.done}/{p.total} done · {p.tokens:,} tokens",
                    percentage=int(100 * p.done / max(p.total, 1)),
                ),
            )

    index = {t.run_id: str(i) for i, t in enumerate(tasks)}
    result = await run_group(
        runtime,
        tasks,
        max_parallel=args.max_parallel,
        group=group,
        on_progress=on_progress,
        apply=lambda t: applier(ls, t.agent_name, versions.get(index[t.run_id], {}), t.goal or ""),
    )
    if token:
        counts = ", ".join(f"{n} {s}" for s, n in result.counts().items())
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=counts))
        ls.work_done_progress.tokens.pop(token, None)
    return {
        "groupId": result.group_id,
        "results": [run_result(ls, r) for r in result.results],
        "wallMs": round(result.wall_ms, 1),
        "usage": wire.usage(result.usage),
        "perAgent": {name: wire.usage(u) for name, u in result.per_agent.items()},
    }
