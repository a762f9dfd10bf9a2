"""AgentRuntime: runs a delegation (answer, edit or tools mode) as a budgeted, audited turn loop.

Every step of a run becomes a RunEvent; the audit store persists them and adapters render them.
The runtime never writes files: edits are artifacts handed to the adapter's `apply` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentls.core.audit import AuditStore
from agentls.core.budget import DEFAULT_WAIT_SECONDS, BudgetExceeded, TokenBudgeter
from agentls.core.definitions import AgentDefinition, AgentRegistry, Mode
from agentls.core.events import EventKind, RunEvent, RunStatus, Usage, new_id
from agentls.core.lines import with_line_endings_of
from agentls.core.llm import ChatModel, ChatRequest, ChatResponse, ModelError, ToolCallRequest
from agentls.core.redact import redact, redact_text
from agentls.core.target import ProposedEdit, Target
from agentls.core.tools.base import Tool, ToolResult, call_with_limit, summarize_arguments
from agentls.core.tools.command import CommandPolicy
from agentls.core.tools.framing import frame_tool_output
from agentls.core.tools.sandbox import SandboxError, WorkspaceSandbox
from agentls.core.tools.workspace import workspace_tools

EventListener = Callable[[RunEvent], None]
# Applies edits in the adapter (editor buffer, file, ...); returns one (applied, reason) per edit.
EditApplier = Callable[[list[ProposedEdit]], Awaitable[list[tuple[bool, str | None]]]]
ModelFactory = Callable[[str | None], ChatModel]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunScope:
    """Who is asking for per-run tools: the run, its place in a delegation tree, its budget."""

    run_id: str
    definition: AgentDefinition
    depth: int
    ancestor_run_ids: tuple[str, ...]
    budget: int | None


# Tools that live as long as one run (a child agentls to delegate to); entered at the run's
# start, exited at its end, whatever the end.
RunToolSource = Callable[[RunScope], contextlib.AbstractAsyncContextManager[dict[str, "Tool"]]]

MAX_TARGET_CHARS = 60_000
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"^```[^\n`]*\n", re.MULTILINE)


@dataclass
class RuntimeConfig:
    max_output_tokens: int = 1024
    max_edit_output_tokens: int = 8192
    # Per-run budget when neither the call nor the definition names one.
    default_run_budget: int | None = None
    max_parallel: int = 8
    max_depth: int = 2
    # How long a model call waits for other runs' in-flight reservations before it is refused.
    budget_wait_seconds: float = DEFAULT_WAIT_SECONDS


class RunResult(BaseModel):
    run_id: str
    agent: str
    status: RunStatus
    text: str = ""
    edits: list[ProposedEdit] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    duration_ms: float = 0.0
    error: str | None = None
    parent_run_id: str | None = None
    # Things the user should know that did not stop the run (e.g. a provider's overshoot).
    warnings: list[str] = Field(default_factory=list)


class RunFailed(Exception):
    """Ends a run with status failed and this message."""


@dataclass(frozen=True)
class StructuredOutput:
    """Ask for JSON matching `schema`; `check` returns the problems of an answer (none: accepted).

    An answer with problems gets `repairs` more turns, each told exactly what was wrong.
    """

    schema: dict[str, Any]
    check: Callable[[str], list[str]]
    repairs: int = 1


@dataclass
class _Run:
    """The mutable state of one run in flight."""

    run_id: str
    definition: AgentDefinition
    goal: str
    target: Target | None
    parent_run_id: str | None
    depth: int
    budget: int | None
    ancestors: tuple[str, ...] = ()
    started: float = field(default_factory=time.monotonic)
    usage: Usage = field(default_factory=Usage)
    text: str = ""
    edits: list[ProposedEdit] = field(default_factory=list)
    turn: int = 0
    bad_tool_calls: int = 0
    streamed: list[str] = field(default_factory=list)
    structured: StructuredOutput | None = None
    repairs_used: int = 0
    warnings: list[str] = field(default_factory=list)

    def event(self, kind: EventKind, **fields: Any) -> RunEvent:
        return RunEvent(
            run_id=self.run_id,
            parent_run_id=self.parent_run_id,
            depth=self.depth,
            agent=self.definition.name,
            goal=self.goal,
            kind=kind,
            usage=self.usage,
            **fields,
        )

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0


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
        # Delegation to a child agentls; offered only to runs above config.max_depth.
        self.delegation_tools: RunToolSource | None = None
        self._listeners: list[EventListener] = []
        self._tasks: dict[str, asyncio.Task[RunResult]] = {}
        self._cancel_at_start: set[str] = set()

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

    def cancel(self, run_id: str | None = None) -> list[str]:
        """Cancel one run (or all); returns the ids of runs that were in flight."""
        ids = [run_id] if run_id else list(self._tasks)
        cancelled = []
        for rid in ids:
            task = self._tasks.get(rid)
            if task and not task.done():
                task.cancel()
                cancelled.append(rid)
        return cancelled

    def cancel_when_started(self, run_id: str) -> None:
        """Cancel a run whether or not it has started (a request cancelled while being set up)."""
        if not self.cancel(run_id):
            self._cancel_at_start.add(run_id)

    def _emit(self, event: RunEvent, listener: EventListener | None = None) -> None:
        if self.audit is not None:
            self.audit.append(event)
        for fn in (*self._listeners, *((listener,) if listener else ())):
            fn(event)

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
        run = _Run(
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
        run: _Run,
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
        self, run: _Run, apply: EditApplier | None, listener: EventListener | None
    ) -> RunResult:
        def emit(event: RunEvent) -> None:
            self._emit(event, listener)

        d = run.definition
        started: dict[str, Any] = {"pid": os.getpid(), "mode": d.mode.value, "budget": run.budget}
        if run.target is not None:
            started["path"] = self._relative(run.target.path)
            if run.target.range is not None:
                started["range"] = run.target.range.model_dump()
        status, error = RunStatus.FINISHED, None
        emit(run.event(EventKind.STARTED, data=started))
        try:
            if run.run_id in self._cancel_at_start:
                self._cancel_at_start.discard(run.run_id)
                raise asyncio.CancelledError
            model = self.model_factory(d.model)
            async with contextlib.AsyncExitStack() as stack:
                await self._loop(run, model, emit, stack)
            if run.edits and apply is not None:
                await self._apply(run, apply, emit)
        except asyncio.CancelledError:
            status, error = RunStatus.CANCELLED, "cancelled by the user"
        except BudgetExceeded as exc:
            status, error = RunStatus.BUDGET_EXCEEDED, str(exc)
        except (ModelError, RunFailed, SandboxError, OSError, UnicodeDecodeError) as exc:
            status, error = RunStatus.FAILED, str(exc)
        except Exception as exc:  # a bug must still close the run in the audit trail
            status, error = RunStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        if run.text:
            emit(
                run.event(
                    EventKind.OUTPUT, data={"chars": len(run.text), "summary": _summary(run.text)}
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
                data={"turns": run.turn, **({"warnings": run.warnings} if run.warnings else {})},
            )
        )
        return RunResult(
            run_id=run.run_id,
            agent=d.name,
            status=status,
            text=run.text,
            edits=run.edits,
            usage=run.usage,
            duration_ms=run.elapsed_ms(),
            error=error,
            parent_run_id=run.parent_run_id,
            warnings=run.warnings,
        )

    def _relative(self, path: Path) -> str:
        try:
            return self.sandbox.relative(path)
        except SandboxError:
            return str(path)

    def _first_messages(self, run: _Run) -> list[dict[str, Any]]:
        d = run.definition
        system = d.instructions.strip()
        if d.mode is Mode.EDIT:
            system += (
                "\n\nAnswer with the complete new version of the target code in one fenced code "
                "block and nothing else. Keep everything you were not asked to change."
            )
        elif d.mode is Mode.TOOLS:
            system += (
                "\n\nUse the tools when you need to; reply without a tool call when you are done."
            )
        parts = [f"Goal: {run.goal}"]
        if run.target is not None:
            code = run.target.selected()
            if len(code) > MAX_TARGET_CHARS:
                raise RunFailed(
                    f"the target is {len(code)} characters, more than the {MAX_TARGET_CHARS} an agent "
                    "takes at once; select a smaller range"
                )
            where = self._relative(run.target.path)
            if run.target.range is not None:
                r = run.target.range
                where += f" (lines {r.start.line + 1}-{r.end.line + (1 if r.end.character else 0)})"
            lang = run.target.path.suffix.lstrip(".")
            parts.append(f"Target: {where}\n```{lang}\n{code}\n```")
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def _max_tokens(self, run: _Run) -> int:
        if run.definition.mode is Mode.EDIT and run.target is not None:
            wanted = len(run.target.selected().encode()) // 2 + 256
            return min(
                self.config.max_edit_output_tokens, max(self.config.max_output_tokens, wanted)
            )
        return self.config.max_output_tokens

    async def _tools_for(self, d: AgentDefinition) -> dict[str, Tool]:
        if d.mode is not Mode.TOOLS:
            return {}
        builtin = workspace_tools(self.sandbox, d.name)
        tools = {name: builtin[name] for name in d.tools if name in builtin}
        if self.extra_tools is not None:
            tools.update(await self.extra_tools(d))
        return tools

    async def _loop(
        self, run: _Run, model: ChatModel, emit: EventListener, stack: contextlib.AsyncExitStack
    ) -> None:
        d = run.definition
        messages = self._first_messages(run)
        tools = await self._tools_for(d)
        if self.commands is not None and d.mode is Mode.TOOLS:
            tools.update(self.commands.tools_for(d.tools, run.run_id, d.name, run.goal))
        if (
            d.mode is Mode.TOOLS
            and self.delegation_tools is not None
            and run.depth < self.config.max_depth
        ):
            scope = RunScope(run.run_id, d, run.depth, run.ancestors, run.budget)
            tools.update(await stack.enter_async_context(self.delegation_tools(scope)))
        structured = run.structured
        turns = d.max_turns + (structured.repairs if structured else 0)
        for turn in range(1, turns + 1):
            run.turn = turn
            offer_tools = bool(tools) and turn < d.max_turns
            request = ChatRequest(
                messages=messages,
                max_tokens=self._max_tokens(run),
                tools=[t.spec for t in tools.values()] if offer_tools else [],
                json_schema=structured.schema if structured else None,
            )
            response = await self._call_model(run, model, request, emit)
            if tools and response.tool_calls and not offer_tools:
                break  # the last turn still asked for tools: no final answer came
            if not response.tool_calls or not offer_tools:
                if structured and (problems := structured.check(response.text)):
                    if run.repairs_used >= structured.repairs:
                        raise RunFailed("the answer is still invalid: " + "; ".join(problems))
                    run.repairs_used += 1
                    messages.append({"role": "assistant", "content": response.text})
                    messages.append({"role": "user", "content": _repair_prompt(problems)})
                    continue
                self._finish_turns(run, response, emit)
                return
            messages.append(_assistant_message(response))
            for call in response.tool_calls:
                messages.append(await self._call_tool(run, tools, call, emit))
        raise RunFailed(f"stopped after max_turns={d.max_turns} turns without a final answer")

    async def _call_model(
        self, run: _Run, model: ChatModel, request: ChatRequest, emit: EventListener
    ) -> ChatResponse:
        # Tokenizing (and loading a tokenizer) and the ledger's transactions run off the loop.
        prompt_bound = await asyncio.to_thread(model.prompt_token_bound, request)
        reservation = await self.budgeter.areserve(
            run_id=run.run_id,
            agent=run.definition.name,
            prompt_tokens=prompt_bound,
            max_tokens=request.max_tokens,
            run_limit=run.budget,
            wait_seconds=self.config.budget_wait_seconds,
            ancestor_run_ids=run.ancestors,
        )
        request.max_tokens = reservation.max_tokens
        streamed_before = len(run.streamed)

        def on_delta(delta: str) -> None:
            run.streamed.append(delta)
            emit(run.event(EventKind.OUTPUT_DELTA, data={"delta": delta, "turn": run.turn}))

        started = time.monotonic()
        try:
            response = await model.complete(request, on_delta)
        except BaseException as exc:
            # Cancelled or failed mid-call: the provider may have billed what it streamed. Commit
            # what it reported, else a bound of it (prompt + streamed bytes), so the spend is never
            # lost from the ledger.
            spent = sum(len(s.encode()) for s in run.streamed[streamed_before:])
            if isinstance(exc, ModelError) and exc.usage is not None:
                run.usage = run.usage + exc.usage
                await self.budgeter.acommit(reservation, exc.usage)
            elif spent:
                used = Usage(input_tokens=prompt_bound, output_tokens=spent, estimated=True)
                used = _clamped(used, reservation.tokens)
                run.usage = run.usage + used
                await self.budgeter.acommit(reservation, used)
            else:
                await self.budgeter.arelease(reservation)
            raise
        run.usage = run.usage + response.usage
        await self.budgeter.acommit(reservation, response.usage)
        overshoot = _overshoot(response.usage, request.max_tokens, reservation.tokens)
        if overshoot is not None:
            run.warnings.append(overshoot)
        emit(
            run.event(
                EventKind.MODEL_CALL,
                duration_ms=(time.monotonic() - started) * 1000.0,
                data={
                    "turn": run.turn,
                    "model": response.model,
                    "call_usage": response.usage.model_dump(),
                    "finish_reason": response.finish_reason,
                    "tool_calls": [c.name for c in response.tool_calls],
                    "max_tokens": request.max_tokens,
                    "reserved": reservation.tokens,
                    **({"warning": overshoot} if overshoot else {}),
                },
            )
        )
        return response

    def _finish_turns(self, run: _Run, response: ChatResponse, emit: EventListener) -> None:
        d = run.definition
        run.text = response.text
        if d.mode is Mode.EDIT and run.target is not None:
            if response.finish_reason == "length" and not _FENCE.search(response.text):
                raise RunFailed(
                    "the answer was cut off at the output token limit before its code was "
                    "complete; select a smaller range or raise the output token limit"
                )
            new_text = with_line_endings_of(
                _replacement(response.text, run.target.selected()), run.target.content()
            )
            if not new_text.strip():
                raise RunFailed("the model returned no code to replace the target with")
            edit = ProposedEdit(
                path=self._relative(run.target.path),
                range=run.target.effective_range(),
                new_text=new_text,
                agent=d.name,
                description=run.goal,
            )
            run.edits.append(edit)
            emit(run.event(EventKind.EDIT_PROPOSED, artifacts=[edit.model_dump(mode="json")]))

    async def _call_tool(
        self, run: _Run, tools: dict[str, Tool], call: ToolCallRequest, emit: EventListener
    ) -> dict[str, Any]:
        arguments = call.arguments
        # Redacted before it is cut short: a secret cut in half no longer looks like one.
        summary = (
            summarize_arguments(redact(arguments))
            if arguments
            else redact_text(call.raw_arguments)[:160]
        )
        emit(
            run.event(
                EventKind.TOOL_STARTED,
                data={"turn": run.turn, "tool": call.name, "arguments": summary},
            )
        )
        started = time.monotonic()
        if call.name not in tools:
            result = ToolResult.error(
                f"unknown tool {call.name!r}; available tools: {', '.join(sorted(tools))}"
            )
        elif arguments is None:
            result = ToolResult.error(
                f"the arguments of {call.name} are not a JSON object: {call.raw_arguments[:200]!r}"
            )
        else:
            try:
                result = await call_with_limit(tools[call.name], arguments)
            except Exception as exc:  # a tool's bug is the model's error message, not a crash
                result = ToolResult.error(f"{call.name} failed: {exc}")
        bad_call = call.name not in tools or arguments is None
        emit(
            run.event(
                EventKind.TOOL_CALL,
                duration_ms=(time.monotonic() - started) * 1000.0,
                error=result.content if result.is_error else None,
                data={
                    "turn": run.turn,
                    "tool": call.name,
                    "arguments": summary,
                    "is_error": result.is_error,
                    "result_chars": len(result.content),
                    **result.data,
                },
            )
        )
        if bad_call:
            run.bad_tool_calls += 1
            if run.bad_tool_calls > 1:
                raise RunFailed(f"the model made a second invalid tool call: {result.content}")
        for edit in result.edits:
            run.edits.append(edit)
            emit(run.event(EventKind.EDIT_PROPOSED, artifacts=[edit.model_dump(mode="json")]))
        return {
            "role": "tool",
            "tool_call_id": call.id,
            "name": call.name,
            # What a tool returns is data (framed); the runtime's own word on a bad call is not.
            "content": result.content
            if bad_call
            else frame_tool_output(call.name, result.content, is_error=result.is_error),
        }

    async def _apply(self, run: _Run, apply: EditApplier, emit: EventListener) -> None:
        outcomes = await apply(run.edits)
        for edit, (applied, reason) in zip(run.edits, outcomes, strict=True):
            kind = EventKind.EDIT_APPLIED if applied else EventKind.EDIT_REJECTED
            emit(run.event(kind, artifacts=[edit.model_dump(mode="json")], error=reason))


def _assistant_message(response: ChatResponse) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": response.text or None,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.raw_arguments},
            }
            for c in response.tool_calls
        ],
    }


def _replacement(answer: str, original: str) -> str:
    """The code inside the answer's first fenced block (or the whole answer), ending like the original."""
    match = _FENCE.search(answer)
    opened = _OPEN_FENCE.search(answer)
    if match:
        code = match.group(1)
    elif opened:  # a block that never closes: the code is everything after its opening line
        code = answer[opened.end() :]
    else:
        code = answer.strip("\n")
    ends = ("\n", "\r")  # LSP's line endings (a CRLF ends in "\n")
    if original.endswith(ends) and not code.endswith(ends):
        code += "\n"
    if not original.endswith(ends) and code.endswith(ends):
        code = code.rstrip("\r\n")
    return code


def _repair_prompt(problems: list[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems)
    return (
        f"Your answer failed validation:\n{listed}\nAnswer again with the complete, corrected JSON."
    )


def _summary(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _overshoot(usage: Usage, max_tokens: int, reserved: int) -> str | None:
    """A warning when the provider reported more than the call was allowed (it was committed)."""
    if usage.output_tokens > max_tokens:
        what = (
            f"the model provider reported {usage.output_tokens:,} output tokens for a call "
            f"limited to {max_tokens:,}"
        )
    elif usage.total > reserved:
        what = (
            f"the model provider reported {usage.total:,} tokens for a call that reserved "
            f"{reserved:,} (its prompt count was higher than agentls' bound)"
        )
    else:
        return None
    return f"{what}; the ledger recorded what it reported, so a budget may now be over its limit"


def _clamped(usage: Usage, limit: int) -> Usage:
    """An estimate never claims more than was reserved for the call."""
    if usage.total <= limit:
        return usage
    output = max(0, limit - usage.input_tokens)
    return Usage(input_tokens=min(usage.input_tokens, limit), output_tokens=output, estimated=True)
