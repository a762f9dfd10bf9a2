"""The ACP agent: initialize, sessions (new, load, list, close), prompt and cancel.

Each method is what the Python SDK's router calls with the request's fields; the prompt turn
itself lives in turn.py. A session's workspace is its `cwd`; sessions on one workspace share
one engine.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from acp.schema import (
    AgentCapabilities,
    AuthenticateResponse,
    CloseSessionResponse,
    Implementation,
    InitializeResponse,
    ListSessionsResponse,
    LoadSessionResponse,
    NewSessionResponse,
    PromptCapabilities,
    PromptResponse,
    ResumeSessionResponse,
    SessionCapabilities,
    SessionCloseCapabilities,
    SessionInfo,
    SessionListCapabilities,
    SessionResumeCapabilities,
    SetSessionConfigOptionResponse,
)

from acp import PROTOCOL_VERSION, RequestError, helpers
from agentls import __version__
from agentls.acp import session_records as records
from agentls.acp import sessions as store
from agentls.acp.approvals import ask_command
from agentls.acp.auth import auth_methods, check_method
from agentls.acp.commands import AGENT_OPTION
from agentls.acp.edits import FileAccess
from agentls.acp.resources import split_prompt
from agentls.acp.sessions import Session, Sessions
from agentls.acp.trust import TrustMode
from agentls.acp.turn import CANCELLED, Turn, agent_options, commands_update
from agentls.core import telemetry
from agentls.core.engine import EngineSettings, McpServerSettings
from agentls.core.tools.command import CommandRequest, Decision

log = logging.getLogger(__name__)


class AgentlsAcpAgent:
    """What the SDK's router calls: one instance per connection (one panel)."""

    def __init__(
        self,
        settings: EngineSettings,
        default_agent: str | None = None,
        trust: TrustMode = TrustMode.SETTINGS,
    ) -> None:
        self.settings = settings
        self.default_agent = default_agent
        self.sessions = Sessions(settings, approver=self._approve_command, trust=trust)
        self.conn: Any = None
        self.client_reads = False
        self.client_writes = False
        self._background: set[asyncio.Task[Any]] = set()

    def on_connect(self, conn: Any) -> None:
        self.conn = conn

    async def initialize(
        self,
        protocol_version: int,
        client_capabilities: Any = None,
        client_info: Any = None,
        **kwargs: Any,
    ) -> InitializeResponse:
        fs = getattr(client_capabilities, "fs", None)
        self.client_reads = bool(getattr(fs, "read_text_file", False))
        self.client_writes = bool(getattr(fs, "write_text_file", False))
        return InitializeResponse(
            protocol_version=min(protocol_version, PROTOCOL_VERSION),
            agent_capabilities=AgentCapabilities(
                load_session=True,
                prompt_capabilities=PromptCapabilities(embedded_context=True),
                session_capabilities=SessionCapabilities(
                    list=SessionListCapabilities(),
                    close=SessionCloseCapabilities(),
                    resume=SessionResumeCapabilities(),
                ),
            ),
            auth_methods=auth_methods(),
            agent_info=Implementation(name="agentls", title="agentls", version=__version__),
        )

    async def authenticate(self, method_id: str, **kwargs: Any) -> AuthenticateResponse:
        check_method(method_id)  # nothing to log in to: the model's key is in the environment
        return AuthenticateResponse()

    def _workspace(self, cwd: str) -> Path:
        path = Path(cwd)
        if not path.is_absolute() or not path.is_dir():
            raise RequestError.invalid_params(
                {"cwd": f"{cwd!r} is not an absolute path to a folder; open a folder first"}
            )
        return path.resolve()

    async def new_session(
        self, cwd: str, mcp_servers: Any = None, **kwargs: Any
    ) -> NewSessionResponse:
        session = await self._open(self._workspace(cwd), None, None, panel_mcp(mcp_servers))
        # It exists from now on: listed, and loadable after a restart before its first prompt.
        await store.persist(session)
        # Only a new session adds a record: keep the workspace's to the newest and recent ones.
        await asyncio.to_thread(records.prune, session.workspace)
        self._after_response(self._send(session, commands_update(session)))
        return NewSessionResponse.model_validate(
            {"sessionId": session.session_id, "configOptions": self._options(session)}
        )

    async def load_session(
        self, cwd: str, session_id: str, mcp_servers: Any = None, **kwargs: Any
    ) -> LoadSessionResponse:
        session = await self._reopen(self._workspace(cwd), session_id, mcp_servers)
        # The spec wants the history replayed before the response.
        for message in session.history:
            text = message["text"]
            update = (
                helpers.update_user_message_text(text)
                if message["role"] == "user"
                else helpers.update_agent_message_text(text)
            )
            await self._send(session, update)
        self._after_response(self._send(session, commands_update(session)))
        return LoadSessionResponse.model_validate({"configOptions": self._options(session)})

    async def resume_session(
        self, session_id: str, cwd: str, mcp_servers: Any = None, **kwargs: Any
    ) -> ResumeSessionResponse:
        """Like session/load, without replaying the history the client already shows."""
        session = await self._reopen(self._workspace(cwd), session_id, mcp_servers)
        self._after_response(self._send(session, commands_update(session)))
        return ResumeSessionResponse.model_validate({"configOptions": self._options(session)})

    async def set_config_option(
        self, config_id: str, session_id: str, value: str | bool, **kwargs: Any
    ) -> SetSessionConfigOptionResponse:
        """The agent picker: which agent a prompt without a /command goes to in this session."""
        session = self._session(session_id)
        if config_id != AGENT_OPTION:
            raise RequestError.invalid_params(
                {"configId": f"unknown option {config_id!r}; agentls offers {AGENT_OPTION!r}"}
            )
        registry = session.runtime.registry
        if not isinstance(value, str) or value not in registry:
            raise RequestError.invalid_params(
                {"value": f"no agent {value!r}; the agents are {', '.join(registry.names())}"}
            )
        session.agent = value
        await store.persist(session)  # the next agent process sends prompts to it too
        return SetSessionConfigOptionResponse.model_validate(
            {"configOptions": self._options(session)}
        )

    def _options(self, session: Session) -> list[dict[str, object]]:
        return agent_options(session, self.default_agent)

    async def list_sessions(
        self, cwd: str | None = None, cursor: str | None = None, **kwargs: Any
    ) -> ListSessionsResponse:
        workspaces = [self._workspace(cwd)] if cwd else self.sessions.workspaces()
        infos: dict[str, dict[str, Any]] = {}
        for workspace in workspaces:
            for record in await asyncio.to_thread(records.list_records, workspace):
                infos[record["sessionId"]] = records.record_info(record)
        for session in self.sessions.live.values():
            if session.workspace in workspaces:
                infos[session.session_id] = session.info()
        ordered = sorted(infos.values(), key=lambda i: i["updatedAt"], reverse=True)
        return ListSessionsResponse(sessions=[SessionInfo.model_validate(i) for i in ordered])

    async def close_session(self, session_id: str, **kwargs: Any) -> CloseSessionResponse:
        session = self.sessions.live.pop(session_id, None)
        if session is not None and session.prompt_task is not None:
            session.prompt_task.cancel()
        return CloseSessionResponse()

    async def prompt(self, session_id: str, prompt: list[Any], **kwargs: Any) -> PromptResponse:
        session = self._session(session_id)
        if session.prompt_task is not None and not session.prompt_task.done():
            raise RequestError.invalid_request(
                {"sessionId": "a prompt is already running in this session; cancel it first"}
            )
        # The SDK hands the request's `_meta` keys in as keyword arguments (`traceparent`).
        telemetry.continue_trace(kwargs)
        files = FileAccess(self.conn, session_id, self.client_reads, self.client_writes)
        turn = Turn(
            self.conn,
            session,
            files,
            self.default_agent,
            allow_generated_edit_tools=self.settings.allow_generated_edit_tools,
        )
        task = asyncio.create_task(turn.run(split_prompt(prompt)), name="agentls-acp-prompt")
        session.prompt_task, session.turn = task, turn
        try:
            stop = await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                task.cancel()
                raise
            stop = CANCELLED
        finally:
            session.prompt_task = session.turn = None
            await store.persist(session)
        return PromptResponse(stop_reason=stop, usage=await turn.usage())

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        session = self.sessions.live.get(session_id)
        if session is not None and session.prompt_task is not None:
            session.prompt_task.cancel()

    async def _reopen(self, workspace: Path, session_id: str, mcp_servers: Any) -> Session:
        """A live session, or a saved one brought back with its history."""
        session = self.sessions.live.get(session_id)
        if session is not None:
            return session
        record = await asyncio.to_thread(records.load_record, workspace, session_id)
        if record is None:
            why = await asyncio.to_thread(records.missing, workspace, session_id)
            raise RequestError(-32002, "Resource not found", {"sessionId": session_id, "why": why})
        return await self._open(workspace, session_id, record, panel_mcp(mcp_servers))

    async def _open(self, workspace: Path, *args: Any) -> Session:
        try:
            return await self.sessions.open(workspace, *args)
        except Exception as exc:  # the ledger or audit store cannot be opened; say which
            raise RequestError.internal_error(
                {"details": f"agentls cannot open the workspace {workspace}: {exc}"}
            ) from None

    async def _approve_command(self, request: CommandRequest) -> Decision:
        """Ask in the session whose prompt started the run (the runtime serves every session)."""
        for session in self.sessions.live.values():
            turn = session.turn
            if turn is not None and request.run_id in turn.renderer.runs:
                return await ask_command(self.conn, session.session_id, turn.renderer, request)
        return Decision.deny("no panel session is waiting on this run")

    def _session(self, session_id: str) -> Session:
        session = self.sessions.live.get(session_id)
        if session is None:
            raise RequestError.invalid_params(
                {"sessionId": f"no session {session_id!r}; create one with session/new"}
            )
        return session

    async def _send(self, session: Session, update: Any) -> None:
        await self.conn.session_update(session_id=session.session_id, update=update)

    def _after_response(self, coro: Any) -> None:
        """Send after the current request's response (the SDK queues it before this runs)."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    async def aclose(self) -> None:
        await self.sessions.aclose()


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("session update not sent: %s", task.exception())


def panel_mcp(servers: Any) -> dict[str, McpServerSettings]:
    """The stdio MCP servers a panel passes to a session, as engine settings.

    agentls advertises neither HTTP nor SSE MCP support, so other kinds are left out with a warning.
    """
    out: dict[str, McpServerSettings] = {}
    for server in servers or []:
        command = getattr(server, "command", None)
        if not command:
            log.warning("MCP server %r left out: agentls connects stdio servers only", server.name)
            continue
        out[server.name] = McpServerSettings(
            command=command,
            args=list(server.args or []),
            env={e.name: e.value for e in server.env or []},
        )
    return out
