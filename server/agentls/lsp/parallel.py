"""agentls.delegateParallel: many runs at once with a parent progress ("3/5 done", tokens) beside
each run's own; cancelling the parent or the request cancels the group, a run's own progress
cancels only that run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams

from agentls.core.events import new_id
from agentls.core.pricing import total_cost
from agentls.lsp import wire
from agentls.lsp.arguments import DelegateParallelArgs
from agentls.lsp.command_ids import DELEGATE_PARALLEL
from agentls.lsp.delegate import known_agent, run_result, target_for
from agentls.lsp.edits import applier
from agentls.lsp.progress import begin_group, end_group, report_group
from agentls.lsp.request_cancel import on_request_cancelled

if TYPE_CHECKING:
    from agentls.core.parallel import GroupProgress, ParallelGroup, ParallelTask
    from agentls.core.runtime import AgentRuntime
    from agentls.core.target import Target
    from agentls.lsp.server import AgentLanguageServer


async def delegate_parallel(ls: AgentLanguageServer, args: DelegateParallelArgs) -> dict[str, Any]:
    """The tasks run in one workspace folder: that of their files (all in the same folder), or the
    first folder when none names a file."""
    group_id = new_id()
    cancelled = False
    started: tuple[ParallelGroup, AgentRuntime] | None = None

    def on_cancel() -> None:
        nonlocal cancelled
        cancelled = True
        if started is not None:
            started[0].cancel(started[1])

    # Linked before the first await, so a cancel that arrives meanwhile still counts.
    on_request_cancelled(ls, on_cancel)
    folder = None
    targets: list[Target | None] = []
    versions: dict[str, dict[str, int | None]] = {}
    for i, wanted in enumerate(args.tasks):
        command = f"{DELEGATE_PARALLEL} tasks[{i}]"
        target = None
        if wanted.uri:
            task_folder, target, versions[str(i)] = target_for(
                ls, command, wanted.uri, wanted.range
            )
            if folder is not None and task_folder is not folder:
                raise JsonRpcInvalidParams(
                    f"{command}: argument 'uri' is in workspace folder {task_folder.root}, the "
                    f"other tasks in {folder.root}; delegate each folder's files separately"
                )
            folder = task_folder
        targets.append(target)
    if folder is None:
        folder = ls.folders.default(DELEGATE_PARALLEL)
    runtime = await folder.runtime_for_run()
    # Imported with the runtime, on its worker thread (folders.py): a lookup here.
    from agentls.core.parallel import ParallelGroup, ParallelTask
    from agentls.core.parallel import delegate_parallel as run_group

    tasks: list[ParallelTask] = []
    for i, wanted in enumerate(args.tasks):
        known_agent(runtime, f"{DELEGATE_PARALLEL} tasks[{i}]", wanted.agent)
        tasks.append(
            ParallelTask(
                agent=wanted.agent,
                goal=wanted.goal,
                target=targets[i],
                budget=wanted.budget,
                run_id=new_id(),
            )
        )
    group = ParallelGroup(group_id, [t.run_id for t in tasks])
    started = (group, runtime)
    if cancelled:
        group.cancel(runtime)
    token = await begin_group(
        ls, f"agentls: {len(tasks)} agents in parallel", lambda: group.cancel(runtime)
    )
    from agentls.lsp.events import bridge_of  # loaded with the runtime (folders.py)

    bridge = bridge_of(runtime)
    for t in tasks:
        d = runtime.resolve_agent(t.agent)
        await bridge.begin_progress(t.run_id, f"{d.name}: {t.goal or d.description}")

    def on_progress(p: GroupProgress) -> None:
        if token:
            report_group(ls, token, p.done, p.total, p.tokens)

    index = {t.run_id: str(i) for i, t in enumerate(tasks)}
    result = await run_group(
        runtime,
        tasks,
        max_parallel=args.max_parallel,
        group=group,
        on_progress=on_progress,
        apply=lambda t: applier(
            ls, t.agent_name, versions.get(index[t.run_id], {}), runtime.workspace, t.goal or ""
        ),
    )
    await bridge.settled()
    if token:
        counts = ", ".join(f"{n} {s}" for s, n in result.counts().items())
        end_group(ls, token, counts)
    return {
        "groupId": result.group_id,
        "results": [run_result(ls, runtime, r) for r in result.results],
        "wallMs": round(result.wall_ms, 1),
        "usage": wire.usage(result.usage),
        "costUsd": total_cost(r.cost_usd for r in result.results),
        "perAgent": {name: wire.usage(u) for name, u in result.per_agent.items()},
    }
