"""AgentRuntime: the lifecycle of delegations (start, queue, cancel, close) and their turn loop.

Every step of a run becomes a RunEvent; the audit store persists them and adapters render them.
The runtime never writes files: edits are artifacts handed to the adapter's `apply` callback.
The parts of a turn live beside it: `prompts` (what the model is told), `metering` (the budget
around each model call), `dispatch` (tool calls), `answers` (reading the final answer), and
`run_state` (one run in flight and its result).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from agentls.core.answers import edit_from_answer, summary
from agentls.core.audit import AuditStore
from agentls.core.bounds import goal_problem
from agentls.core.budget import (
    BudgetExceeded,
    TokenBudgeter,
)
from agentls.core.definitions import AgentDefinition, Mode
from agentls.core.dispatch import dispatch_tool_call
from agentls.core.events import EventKind, RunEvent, RunStatus, new_id
from agentls.core.group_commit import Commit, committed
from agentls.core.llm import ChatModel, ChatRequest, ModelError
from agentls.core.metering import metered_call
from agentls.core.model_choice import fallback_notice
from agentls.core.prompts import assistant_message, first_messages, output_limit, repair_prompt
from agentls.core.registry import AgentRegistry
from agentls.core.run_state import (
    EditApplier,
    EventListener,
    RunFailed,
    RunResult,
    RunState,
    StructuredOutput,
)
from agentls.core.runtime_config import RunScope, RuntimeConfig, RunToolSource
from agentls.core.state_check import StateError
from agentls.core.target import Target
from agentls.core.tools.base import Tool
from agentls.core.tools.command import COMMAND_TOOL, CommandPolicy, RunCommand
from agentls.core.tools.sandbox import SandboxError, WorkspaceSandbox
from agentls.core.tools.workspace import workspace_tools
from agentls.core.who import origin_of

# Adapters import these from here: the runtime is the engine's front door.
__all__ = [
    "AgentRuntime",
    "EditApplier",
    "EventListener",
    "RunFailed",
    "RunResult",
    "RunScope",
    "RunToolSource",
    "RuntimeConfig",
    "StructuredOutput",
]

ModelFactory = Callable[[str | None], ChatModel]

# What a cancelled run says when whoever cancelled it gave no reason.
CANCELLED_BY_USER = "cancelled by the user"

log = logging.getLogger(__name__)


class AgentRuntime:
    """Delegates goals to agents; one instance per workspace, shared by every adapter request."""

    def __init__(
        self,
        workspace: Path,
        registry: AgentRegistry,
        model_factory: ModelFactory,
        budgeter: TokenBudgeter,
        audit: AuditStore | None = None,
        config: RuntimeConfig | None = None,
        extra_tools: Callable[[AgentDefinition], Awaitable[dict[str, Tool]]] | None = None,
        commands: CommandPolicy | None = None,
    ) -> None:
        self.workspace = workspace.resolve()
        self.sandbox = WorkspaceSandbox(self.workspace)
        self.registry = registry
        self.model_factory = model_factory
        self.budgeter = budgeter
        self.audit = audit
        self.config = config or RuntimeConfig()
        self.extra_tools = extra_tools
        # run_command: off unless settings enable it; approvals come from the adapter.
        self.commands = commands
        # Delegation to a child agentls; offered only to runs whose depth is below config.max_depth.
        self.delegation_tools: RunToolSource | None = None
        self.origin = origin_of(self.workspace)
        self._listeners: list[EventListener] = []
        self._tasks: dict[str, asyncio.Task[RunResult]] = {}
        self._cancel_at_start: set[str] = set()
        # Runs whose closing event is out (their task may still await its commit): over, so a
        # cancel no longer reaches or reports them.
        self._ended: set[str] = set()
        # Why a run was cancelled, when the canceller said so (the first reason wins).
        self._cancel_reasons: dict[str, str] = {}

    async def aclose(self, grace: float = 30.0) -> None:
        """Stop every run, then close model clients (and connections), ledger and audit store.

        Each run is cancelled and given up to `grace` seconds to commit what it spent and record
        itself cancelled (cancel wins at every await, so this is quick unless a tool ignores it).
        """
        self.cancel()
        running = [t for t in self._tasks.values() if not t.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                log.warning("run %s did not end within %.0f s of closing", task.get_name(), grace)
        aclose = getattr(self.model_factory, "aclose", None)
        if aclose is not None:
            await aclose()
        close_tools = getattr(self.extra_tools, "aclose", None)  # MCP sessions and their processes
        if close_tools is not None:
            await close_tools()
        self.budgeter.close()
        if self.audit is not None:
            self.audit.close()

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def active_runs(self) -> list[str]:
        return list(self._tasks)

    def cancel(self, run_id: str | None = None, reason: str | None = None) -> list[str]:
        """Cancel one run (or all), for `reason` (default: by the user); returns the ids of runs
        that were in flight (not yet ended)."""
        ids = [run_id] if run_id else list(self._tasks)
        cancelled = []
        for rid in ids:
            task = self._tasks.get(rid)
            if task and not task.done() and rid not in self._ended:
                if reason:
                    self._cancel_reasons.setdefault(rid, reason)
                task.cancel()
                cancelled.append(rid)
        return cancelled

    def cancel_when_started(self, run_id: str) -> None:
        """Cancel a run whether or not it has started (a request cancelled while being set up)."""
        if not self.cancel(run_id):
            self._cancel_at_start.add(run_id)

    def _emit(self, event: RunEvent, listener: EventListener | None = None) -> Commit | None:
        """Queue the event for the audit trail (returning its commit) and tell the listeners."""
        self.origin.stamp(event)
        commit = self.audit.submit(event) if self.audit is not None else None
        for fn in (*self._listeners, *((listener,) if listener else ())):
            fn(event)
        return commit

    async def _saved(self, run: RunState) -> None:
        """Wait until the run's events so far are in the audit trail; raise if they failed to be."""
        if run.unsaved:
            commits, run.unsaved = run.unsaved, []
            await committed(commits)

    def resolve_agent(self, agent: str | AgentDefinition) -> AgentDefinition:
        return agent if isinstance(agent, AgentDefinition) else self.registry.get(agent).definition

    async def delegate(
        self,
        agent: str | AgentDefinition,
        goal: str,
        target: Target | None = None,
        *,
        budget: int | None = None,
        parent_run_id: str | None = None,
        depth: int = 0,
        run_id: str | None = None,
        apply: EditApplier | None = None,
        listener: EventListener | None = None,
        structured: StructuredOutput | None = None,
        slot: asyncio.Semaphore | None = None,
        ancestor_run_ids: Sequence[str] = (),
    ) -> RunResult:
        """Run `agent` on `goal` (and `target`) to its end; cancel via `cancel(run_id)` or the caller's task.

        With `slot`, the run waits for it before its first step (a queue behind a cap on runs in
        flight); `cancel(run_id)` reaches it while it waits. Every model call is also charged to
        the run scopes of `ancestor_run_ids` (the runs this one was delegated from).
        """
        definition = self.resolve_agent(agent)
        if target is not None and not self.sandbox.contains(target.path):
            raise SandboxError(f"{target.path} is outside the workspace {self.workspace}")
        if (too_long := goal_problem(goal)) is not None:  # before it is tokenized, stored or sent
            return self.not_started(
                run_id or new_id(),
                definition.name,
                goal[:200] + "…",
                RunStatus.FAILED,
                too_long,
                parent_run_id=parent_run_id,
                depth=depth,
                listener=listener,
            )
        run = RunState(
            run_id=run_id or new_id(),
            definition=definition,
            goal=goal,
            target=target,
            parent_run_id=parent_run_id,
            depth=depth,
            budget=budget or definition.budget or self.config.default_run_budget,
            structured=structured,
            ancestors=tuple(ancestor_run_ids),
        )
        task = asyncio.create_task(
            self._queued(run, apply, listener, slot), name=f"agentls-run-{run.run_id}"
        )
        self._tasks[run.run_id] = task
        caller = asyncio.current_task()
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if caller is not None and caller.cancelling():
                # The caller was cancelled: cancel the run, let it record its end, then propagate.
                task.cancel()
                await asyncio.wait([task])
                raise
            # The run was cancelled before its task took a single step.
            return self.not_started(
                run.run_id,
                definition.name,
                goal,
                RunStatus.CANCELLED,
                "cancelled before this run started",
                parent_run_id=parent_run_id,
                depth=depth,
                listener=listener,
            )
        finally:
            self._tasks.pop(run.run_id, None)
            self._ended.discard(run.run_id)
            self._cancel_reasons.pop(run.run_id, None)

    def not_started(
        self,
        run_id: str,
        agent: str,
        goal: str,
        status: RunStatus,
        error: str,
        *,
        parent_run_id: str | None = None,
        depth: int = 0,
        listener: EventListener | None = None,
    ) -> RunResult:
        """Close a run that never took a step (cancelled while queued, a bad task) with an event."""
        kind = EventKind.CANCELLED if status is RunStatus.CANCELLED else EventKind.FAILED
        self._emit(
            RunEvent(
                run_id=run_id,
                parent_run_id=parent_run_id,
                depth=depth,
                agent=agent,
                goal=goal,
                kind=kind,
                status=status,
                duration_ms=0.0,
                error=error,
                data={"turns": 0, "started": False},
            ),
            listener,
        )
        return RunResult(
            run_id=run_id, agent=agent, status=status, error=error, parent_run_id=parent_run_id
        )

    async def _queued(
        self,
        run: RunState,
        apply: EditApplier | None,
        listener: EventListener | None,
        slot: asyncio.Semaphore | None,
    ) -> RunResult:
        if slot is None:
            return await self._run(run, apply, listener)
        try:
            await slot.acquire()
        except asyncio.CancelledError:
            return self.not_started(
                run.run_id,
                run.definition.name,
                run.goal,
                RunStatus.CANCELLED,
                "cancelled before this run started (it was queued)",
                parent_run_id=run.parent_run_id,
                depth=run.depth,
                listener=listener,
            )
        try:
            run.started = time.monotonic()  # time in the queue is not the run's duration
            return await self._run(run, apply, listener)
        finally:
            slot.release()

    async def _run(
        self, run: RunState, apply: EditApplier | None, listener: EventListener | None
    ) -> RunResult:
        def emit(event: RunEvent) -> None:
            commit = self._emit(event, listener)
            if commit is not None and (not run.unsaved or run.unsaved[-1] is not commit):
                run.unsaved.append(commit)

        d = run.definition
        started: dict[str, Any] = {"pid": os.getpid(), "mode": d.mode.value, "budget": run.budget}
        if run.target is not None:
            started["path"] = self._relative(run.target.path)
            if run.target.range is not None:
                started["range"] = run.target.range.model_dump()
        status, error = RunStatus.FINISHED, None
        emit(run.event(EventKind.STARTED, data=started))
        try:
            await self._saved(run)  # no step is taken unaudited
            if run.run_id in self._cancel_at_start:
                self._cancel_at_start.discard(run.run_id)
                raise asyncio.CancelledError
            model = self.model_factory(d.model)
            if (notice := fallback_notice(model)) is not None:
                run.warnings.append(notice)
            async with contextlib.AsyncExitStack() as stack:
                await self._loop(run, model, emit, stack)
            if run.edits and apply is not None:
                await self._apply(run, apply, emit)
        except asyncio.CancelledError:
            error = self._cancel_reasons.get(run.run_id, CANCELLED_BY_USER)
            status = RunStatus.CANCELLED
        except BudgetExceeded as exc:
            status, error = RunStatus.BUDGET_EXCEEDED, str(exc)
        except (
            ModelError,
            RunFailed,
            SandboxError,
            StateError,
            OSError,
            UnicodeDecodeError,
        ) as exc:
            status, error = RunStatus.FAILED, str(exc)
        except Exception as exc:  # a bug must still close the run in the audit trail
            status, error = RunStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        if run.text:
            emit(
                run.event(
                    EventKind.OUTPUT, data={"chars": len(run.text), "summary": summary(run.text)}
                )
            )
        artifacts = [e.model_dump(mode="json") for e in run.edits]
        closing = {
            RunStatus.FINISHED: EventKind.FINISHED,
            RunStatus.FAILED: EventKind.FAILED,
            RunStatus.CANCELLED: EventKind.CANCELLED,
            RunStatus.BUDGET_EXCEEDED: EventKind.BUDGET_EXCEEDED,
        }[status]
        emit(
            run.event(
                closing,
                status=status,
                duration_ms=run.elapsed_ms(),
                artifacts=artifacts,
                error=error,
                data=run.closing_data(),
                content={"output": run.text} if run.text else None,
            )
        )
        self._ended.add(run.run_id)
        # An audit failure is raised to the caller. A cancel here changes nothing: the run is
        # over and its closing event queued, which closing the store writes.
        with contextlib.suppress(asyncio.CancelledError):
            await self._saved(run)
        return run.result(status, error)

    def _relative(self, path: Path) -> str:
        try:
            return self.sandbox.relative(path)
        except SandboxError:
            return str(path)

    async def _tools_for(self, run: RunState, stack: contextlib.AsyncExitStack) -> dict[str, Tool]:
        """The tools a tools-mode run may call: built-ins it lists, MCP tools, run_command, and
        (above the maximum depth) delegation to a child agentls that lives as long as the run."""
        d = run.definition
        if d.mode is not Mode.TOOLS:
            return {}
        builtin = workspace_tools(self.sandbox, d.name)
        tools = {name: builtin[name] for name in d.tools if name in builtin}
        if self.extra_tools is not None:
            tools.update(await self.extra_tools(d))
        if self.commands is not None:
            tools.update(self.commands.tools_for(d.tools, run.run_id, d.name, run.goal))
        if self.delegation_tools is not None and run.depth < self.config.max_depth:
            scope = RunScope(run.run_id, d, run.depth, run.ancestors, run.budget)
            tools.update(await stack.enter_async_context(self.delegation_tools(scope)))
        return tools

    async def _loop(
        self, run: RunState, model: ChatModel, emit: EventListener, stack: contextlib.AsyncExitStack
    ) -> None:
        d = run.definition
        messages = first_messages(run, self._relative(run.target.path) if run.target else "")
        tools = await self._tools_for(run, stack)
        if isinstance(command := tools.get(COMMAND_TOOL), RunCommand):
            # A command cut short by a cancel (asking or running) is still recorded.
            def record_cancelled(data: dict[str, Any]) -> None:
                info = {"turn": run.turn, "tool": COMMAND_TOOL, "is_error": True, **data}
                emit(run.event(EventKind.TOOL_CALL, error="cancelled", data=info))

            command.record = record_cancelled
        structured = run.structured
        turns = d.max_turns + (structured.repairs if structured else 0)
        for turn in range(1, turns + 1):
            await self._saved(run)
            run.turn = turn
            offer_tools = bool(tools) and turn < d.max_turns
            request = ChatRequest(
                messages=messages,
                max_tokens=output_limit(
                    run, self.config.max_output_tokens, self.config.max_edit_output_tokens
                ),
                tools=[t.spec for t in tools.values()] if offer_tools else [],
                json_schema=structured.schema if structured else None,
            )
            response = await metered_call(
                self.budgeter,
                run,
                model,
                request,
                emit,
                wait_seconds=self.config.budget_wait_seconds,
                min_output_tokens=self.config.min_output_tokens,
                prices=self.config.prices,
            )
            if tools and response.tool_calls and not offer_tools:
                break  # the last turn still asked for tools: no final answer came
            if not response.tool_calls or not offer_tools:
                if structured and (problems := structured.check(response.text)):
                    if run.repairs_used >= structured.repairs:
                        raise RunFailed("the answer is still invalid: " + "; ".join(problems))
                    run.repairs_used += 1
                    messages.append({"role": "assistant", "content": response.text})
                    messages.append({"role": "user", "content": repair_prompt(problems)})
                    continue
                run.text = response.text
                if d.mode is Mode.EDIT and run.target is not None:
                    path = self._relative(run.target.path)
                    run.propose(edit_from_answer(run, response, path), emit)
                return
            messages.append(assistant_message(response))
            await self._saved(run)  # the call that asked for these tools is recorded first
            for call in response.tool_calls:
                messages.append(await dispatch_tool_call(run, tools, call, emit))
        raise RunFailed(f"stopped after max_turns={d.max_turns} turns without a final answer")

    async def _apply(self, run: RunState, apply: EditApplier, emit: EventListener) -> None:
        await self._saved(run)
        outcomes = await apply(run.edits)
        for edit, (applied, reason) in zip(run.edits, outcomes, strict=True):
            kind = EventKind.EDIT_APPLIED if applied else EventKind.EDIT_REJECTED
            emit(run.event(kind, artifacts=[edit.model_dump(mode="json")], error=reason))
