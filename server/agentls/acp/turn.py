"""One prompt turn: parse the prompt, run what it asks on the session's runtime, render the run.

Input errors (no text, an unknown command, an attachment outside the workspace, nothing to work
on) and run endings (failed, over budget) are told in the session as a message that says what to
do; the turn then ends normally (`end_turn`), so the agent keeps serving and the panel keeps the
message. `refusal` is not used: panels take it for a content-policy refusal and drop the turn.
Cancelling the turn's task cancels its runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from acp.schema import AvailableCommandsUpdate, ConfigOptionUpdate, Usage

from agentls.acp.commands import (
    Budget,
    CommandError,
    Create,
    Delegate,
    Parallel,
    agent_option,
    available_commands,
    default_agent,
    parse_command,
)
from agentls.acp.edits import EditConsent, FileAccess
from agentls.acp.named_targets import NamedFile, Naming, missing_target, named_file
from agentls.acp.resources import (
    PromptParts,
    ResourceError,
    inside,
    is_file,
    path_of,
    target_of,
)
from agentls.acp.sessions import Session
from agentls.acp.turn_usage import turn_usage
from agentls.acp.updates import RunRenderer
from agentls.core.definitions import AgentDefinition
from agentls.core.events import RunStatus, new_id
from agentls.core.limits import parse_token_limit
from agentls.core.runtime import RunResult
from agentls.core.target import Target, TextRange

log = logging.getLogger(__name__)

END_TURN = "end_turn"
CANCELLED = "cancelled"
MAX_NAMED_ATTACHMENTS = 20
MAX_CONTEXT_CHARS = 20_000


def session_agent(session: Session, setting: str | None) -> str:
    """Where this session's plain prompts go: its picker's choice, else the default rule.

    A choice saved with the session may name an agent that is gone since (created in memory, or
    the folder's own and the folder no longer trusted): the default rule then applies.
    """
    registry = session.runtime.registry
    picked = session.agent if session.agent in registry else None
    return default_agent(registry, picked or setting)


def agent_options(session: Session, setting: str | None) -> list[dict[str, object]]:
    return [agent_option(session.runtime.registry, session_agent(session, setting))]


def options_update(session: Session, setting: str | None) -> ConfigOptionUpdate:
    return ConfigOptionUpdate.model_validate(
        {"sessionUpdate": "config_option_update", "configOptions": agent_options(session, setting)}
    )


def commands_update(session: Session) -> AvailableCommandsUpdate:
    return AvailableCommandsUpdate.model_validate(
        {
            "sessionUpdate": "available_commands_update",
            "availableCommands": available_commands(session.runtime.registry),
        }
    )


@dataclass
class Turn:
    conn: Any  # acp AgentSideConnection
    session: Session
    files: FileAccess
    default_agent: str | None
    allow_generated_edit_tools: bool = False

    def __post_init__(self) -> None:
        self.runtime = self.session.runtime

        async def send(update: Any) -> None:
            await self.conn.session_update(session_id=self.session.session_id, update=update)

        self.renderer = RunRenderer(send, self.runtime, self.files.current, cost=self.session.cost)
        self.roots: list[str] = []  # the runs this turn started, whose trees its usage counts

    async def usage(self) -> Usage | None:
        """The turn's token use, its runs' delegations included."""
        return await turn_usage(self.runtime, self.roots)

    def say(self, text: str) -> None:
        self.renderer.say(text)
        self.session.record("agent", text)

    async def run(self, parts: PromptParts) -> str:
        unsubscribe = self.runtime.subscribe(self.renderer.on_event)
        try:
            return await self._run(parts)
        except Exception as exc:  # a bug ends this turn with a message, not the agent
            log.exception("prompt failed")
            self.say(
                f"\n\nagentls hit an internal error: {type(exc).__name__}: {exc}. "
                "The session still works; the details are in the agent's log (stderr)."
            )
            return END_TURN
        finally:
            unsubscribe()
            await self.renderer.aclose()

    async def _run(self, parts: PromptParts) -> str:
        self.session.record("user", parts.text)
        if self.session.notice:  # an untrusted folder: what is not used and how to trust it
            self.renderer.say(self.session.notice + "\n\n")
            self.session.notice = None
        if not parts.text:
            self.say(
                "The prompt has no text. Say what the agent should do, e.g. "
                "`/review` or `explain how this parses dates`; attached files are what it works on."
            )
            return END_TURN
        if parts.ignored:
            self.say(
                f"(agentls reads text and files only; left out: {', '.join(parts.ignored)})\n\n"
            )
        registry = self.runtime.registry
        try:
            command = parse_command(
                parts.text, registry, session_agent(self.session, self.default_agent)
            )
        except CommandError as exc:
            self.say(str(exc))
            return END_TURN
        if isinstance(command, Budget):
            return await self._budget(command)
        try:
            target, extra = await self._target(parts)
            naming = Naming()
            if target is None:
                target, command, naming = await self._named(command)
        except ResourceError as exc:
            self.say(str(exc))
            return END_TURN
        if target is None and not isinstance(command, Create):
            missing = missing_target(command, registry, extra, naming, self.session.workspace)
            if missing is not None:
                self.say(missing)
                return END_TURN
        if isinstance(command, Parallel):
            return await self._parallel(command, target, extra)
        if isinstance(command, Create):
            return await self._create(command, target, extra)
        definition = registry.get(command.agent).definition
        return await self._delegate(definition, command.goal, target, extra)

    async def _target(self, parts: PromptParts) -> tuple[Target | None, str]:
        """The first attached file is the target; other files are named in the goal.

        Attachments that are not files (an editor's rules or threads) add their text as context.
        """
        files = [a for a in parts.attachments if is_file(a.uri)]
        extra = ""
        for other in parts.attachments:
            if is_file(other.uri):
                continue
            if other.selection:
                extra += f"\n\nContext attached by the editor ({other.uri}):\n{other.selection}"
            else:
                self.say(f"(left out {other.uri}: agentls reads files and attached text only)\n\n")
        extra = extra[:MAX_CONTEXT_CHARS]
        if not files:
            return None, extra
        workspace = self.session.workspace
        for attachment in files[1:]:
            inside(workspace, path_of(attachment.uri)[0])
        target, selection = await target_of(files[0], workspace, self.files.read)
        if target.text is not None:
            self.renderer.seen[target.path] = target.text
        if selection:
            extra += f"\n\nThe user selected this text in the target:\n```\n{selection}\n```"
        others = [path_of(a.uri)[0] for a in files[1:MAX_NAMED_ATTACHMENTS]]
        if others:
            names = ", ".join(str(p.resolve().relative_to(workspace)) for p in others)
            extra += f"\n\nAlso attached (read them with tools if you need them): {names}"
        return target, extra

    async def _named(
        self, command: Delegate | Parallel | Create
    ) -> tuple[Target | None, Delegate | Parallel | Create, Naming]:
        """The file the command's text names, when nothing is attached (text-only panels).

        A goal that is only the file's name leaves the agent its own task as the goal.
        """
        text = command.sentence if isinstance(command, Create) else command.goal
        naming = await asyncio.to_thread(named_file, text, self.session.workspace)
        if naming.found is None:
            return None, command, naming
        target = await self._read_named(naming.found)
        if naming.found.alone and not isinstance(command, Create):
            command = dataclasses.replace(command, goal="")
        return target, command, naming

    async def _read_named(self, named: NamedFile) -> Target:
        try:
            text = await self.files.read(named.path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ResourceError(f"Cannot read {named.word}: {exc}") from None
        rng = None
        if named.lines is not None:
            try:
                rng = TextRange.whole_lines(*named.lines, text)
            except ValueError as exc:
                raise ResourceError(f"{named.word}: {exc}; name lines inside the file.") from None
        self.renderer.seen[named.path] = text
        return Target(path=named.path, range=rng, text=text)

    async def _delegate(
        self, definition: AgentDefinition, goal: str, target: Target | None, extra: str
    ) -> str:
        run_id = new_id()
        self.renderer.watch(run_id)
        self.roots.append(run_id)
        result = await self.runtime.delegate(
            definition,
            (goal or definition.description) + extra,
            target,
            run_id=run_id,
            apply=self._consent(run_id),
        )
        if result.text and run_id not in self.renderer.streamed:
            self.renderer.say(result.text)
        self.session.record("agent", result.text)
        return self._ending(result)

    def _consent(self, run_id: str) -> EditConsent:
        return EditConsent(self.conn, self.session, self.files, self.renderer, run_id)

    def _ending(self, result: RunResult) -> str:
        if result.status is RunStatus.FINISHED:
            return END_TURN
        if result.status is RunStatus.CANCELLED:
            return CANCELLED
        if result.status is RunStatus.BUDGET_EXCEEDED:  # an ordinary end: the message explains
            self.say(
                f"\n\n**{result.agent}** stopped: {result.error}\nRaise the limit with "
                "`/budget set N` (or `agentls budget set N`), or give the agent a smaller target."
            )
            return END_TURN
        self.say(f"\n\n**{result.agent}** failed: {result.error}")
        return END_TURN

    async def _parallel(self, command: Parallel, target: Target | None, extra: str) -> str:
        from agentls.core.parallel import ParallelTask, delegate_parallel

        self.renderer.stream_output = False  # interleaved answers would be unreadable
        self.renderer.show_agent = True
        tasks = [
            ParallelTask(agent=name, goal=(command.goal + extra) or None, target=target)
            for name in command.agents
        ]
        for task in tasks:
            self.renderer.watch(task.run_id)
            self.roots.append(task.run_id)
        result = await delegate_parallel(
            self.runtime, tasks, apply=lambda task: self._consent(task.run_id)
        )
        endings = []
        for r in result.results:
            self.say(
                f"### {r.agent} ({r.status.value}, {r.usage.total} tokens)\n\n"
                f"{r.text or r.error or ''}\n\n"
            )
            endings.append(self._ending(r) if r.status is not RunStatus.FAILED else END_TURN)
        return CANCELLED if CANCELLED in endings else END_TURN

    async def _create(self, command: Create, target: Target | None, extra: str) -> str:
        from agentls.core.create import CreateAgentError, create_agent

        creation_id = new_id()
        self.renderer.runs.add(creation_id)  # its tool calls and usage show; its JSON does not
        self.roots.append(creation_id)
        try:
            created = await create_agent(
                self.runtime,
                command.sentence,
                selection=target,
                run_id=creation_id,
                allow_edit_tools=self.allow_generated_edit_tools,
            )
        except CreateAgentError as exc:
            self.say(f"Creating the agent did not work: {exc}")
            return self._ending(exc.creation) if exc.creation.status.value != "failed" else END_TURN
        d = created.definition
        self.say(
            f"Created **{d.name}** ({d.mode.value}): {d.description}\n"
            f"It is available as `/{d.name}` until agentls restarts.\n\n"
        )
        self.renderer.update(commands_update(self.session))
        self.renderer.update(options_update(self.session, self.default_agent))
        return await self._delegate(d, command.sentence, target, extra)

    async def _budget(self, command: Budget) -> str:
        budgeter = self.runtime.budgeter
        words = command.words
        if words:
            if len(words) != 2 or words[0] != "set":
                self.say(
                    "Usage: `/budget` shows the budget; `/budget set N` (or `none`) sets the total limit."
                )
                return END_TURN
            try:
                limit = parse_limit(words[1])
            except ValueError as exc:
                self.say(f"/budget set: {exc}")
                return END_TURN
            await asyncio.to_thread(budgeter.set_limit, limit)
        snap = await asyncio.to_thread(budgeter.snapshot)
        limit_text = "no limit" if snap.limit is None else f"limit {snap.limit}"
        lines = [f"**Total**: {snap.used} tokens used, {limit_text}"]
        if snap.remaining is not None:
            lines[0] += f", {snap.remaining} remaining"
        for name, scope in snap.agents.items():
            agent_limit = "" if scope.limit is None else f" of {scope.limit}"
            lines.append(f"- {name}: {scope.used}{agent_limit}")
        self.say("\n".join(lines))
        return END_TURN


def parse_limit(text: str) -> int | None:
    """'20000', '20k', '1.5M' → tokens; 'none' → no limit (core/limits.py, as the CLI parses)."""
    return parse_token_limit(text)
