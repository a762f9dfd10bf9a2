"""ACP sessions: one engine per workspace, and each session's record kept in the user's state.

A session is a conversation in an agent panel; its prompts run on the workspace's AgentRuntime
(built by core.engine, so the ledger and audit trail are the ones the LSP and the CLI use). Its
record (title, picked agent, history; session_records.py) is saved from the moment it is created,
and again when the agent is picked and after each prompt, so `session/list` and `session/load`
work across restarts of the agent, for threads opened and not yet used too (a panel reopens its
threads when it starts).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentls.acp.session_records import iso, write_record
from agentls.acp.trust import TrustDecision, TrustMode, decide
from agentls.acp.updates import SessionCost
from agentls.core.engine import EngineSettings, McpServerSettings, build_runtime
from agentls.core.events import new_id
from agentls.core.runtime import AgentRuntime
from agentls.core.tools.command import Approver

log = logging.getLogger(__name__)

MAX_HISTORY = 200
MAX_MESSAGE_CHARS = 20_000


@dataclass
class Session:
    session_id: str
    workspace: Path
    runtime: AgentRuntime
    title: str | None = None
    updated: float = field(default_factory=time.time)
    # [{"role": "user" | "agent", "text": ...}], oldest first.
    history: list[dict[str, str]] = field(default_factory=list)
    # Where a prompt without a /command goes (the panel's agent picker); None: the default rule.
    agent: str | None = None
    # Edits written without asking once the user chose "always allow" in this session.
    always_allow_edits: bool = False
    prompt_task: asyncio.Task[Any] | None = None
    turn: Any = None  # the turn.Turn in flight, which owns its runs' questions
    # What an untrusted folder had that is not used, told before the session's first answer.
    notice: str | None = None
    # Dollars the session's model calls have cost (usage_update's `cost`).
    cost: SessionCost = field(default_factory=SessionCost)
    # Record writes of this session, one at a time, in the order of the changes they save.
    saving: asyncio.Lock = field(default_factory=asyncio.Lock)

    def record(self, role: str, text: str) -> None:
        if not text:
            return
        if role == "user" and self.title is None:
            self.title = " ".join(text.split())[:80]
        self.history.append({"role": role, "text": text[:MAX_MESSAGE_CHARS]})
        del self.history[:-MAX_HISTORY]
        self.updated = time.time()

    def info(self) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "cwd": str(self.workspace),
            "title": self.title,
            "updatedAt": iso(self.updated),
        }


def snapshot(session: Session) -> dict[str, Any]:
    """The session's record as saved (taken on the event loop, where the session changes)."""
    return {
        "sessionId": session.session_id,
        "cwd": str(session.workspace),
        "title": session.title,
        "agent": session.agent,
        "updated": session.updated,
        "history": list(session.history),
    }


async def persist(session: Session) -> None:
    """Save the session's record off the event loop; a failure is logged, not raised: the
    session works on, only reopening it after a restart suffers."""
    async with session.saving:
        record = snapshot(session)
        try:
            await asyncio.to_thread(write_record, session.workspace, record)
        except OSError as exc:
            log.warning("session %s not saved: %s", session.session_id, exc)


class Sessions:
    """Live sessions and the runtimes they share: one per workspace, trust and set of panel MCP
    servers."""

    def __init__(
        self,
        settings: EngineSettings,
        approver: Approver | None = None,
        trust: TrustMode = TrustMode.SETTINGS,
    ) -> None:
        self.settings = settings
        self.approver = approver
        self.trust = trust
        self.live: dict[str, Session] = {}
        self._runtimes: dict[tuple[Path, bool, str], AgentRuntime] = {}
        self._building: dict[tuple[Path, bool, str], asyncio.Task[AgentRuntime]] = {}

    async def runtime_for(
        self,
        workspace: Path,
        mcp: dict[str, McpServerSettings] | None = None,
        *,
        trusted: bool = False,
    ) -> AgentRuntime:
        """The workspace's runtime; a panel's MCP servers join the settings' own."""
        mcp = mcp or {}
        servers = json.dumps({k: v.model_dump() for k, v in sorted(mcp.items())})
        key = (workspace, trusted, servers)
        if key in self._runtimes:
            return self._runtimes[key]
        if key not in self._building:
            settings = self.settings.model_copy(
                update={
                    "mcp_servers": {**self.settings.mcp_servers, **mcp},
                    "workspace_trusted": trusted,
                }
            )
            # Opening the ledger and loading definitions touch the disk: off the event loop.
            self._building[key] = asyncio.create_task(
                asyncio.to_thread(_build_runtime, workspace, settings, self.approver)
            )
        try:
            runtime = await asyncio.shield(self._building[key])
        finally:
            if key in self._building and self._building[key].done():
                self._building.pop(key, None)
        self._runtimes[key] = runtime
        return runtime

    async def decide_trust(
        self, workspace: Path, panel_servers: list[str] | None = None
    ) -> TrustDecision:
        """Trust is decided again for each session: the user may have trusted the folder since."""
        return await asyncio.to_thread(
            decide,
            self.trust,
            workspace,
            run_command=self.settings.run_command.enabled,
            panel_servers=panel_servers or [],
        )

    async def open(
        self,
        workspace: Path,
        session_id: str | None = None,
        record: dict[str, Any] | None = None,
        mcp: dict[str, McpServerSettings] | None = None,
    ) -> Session:
        trust = await self.decide_trust(workspace, sorted(mcp or {}))
        # A panel may fill its servers from a repository's project settings (Zed): an untrusted
        # folder starts none of them.
        mcp = mcp if trust.trusted else None
        runtime = await self.runtime_for(workspace, mcp, trusted=trust.trusted)
        session = Session(session_id or new_id(), workspace, runtime, notice=trust.notice)
        if record is not None:
            session.title = record.get("title")
            agent = record.get("agent")
            session.agent = agent if isinstance(agent, str) else None
            session.updated = float(record.get("updated") or time.time())
            history = record.get("history")
            if isinstance(history, list):
                session.history = [
                    {"role": str(m.get("role")), "text": str(m.get("text"))}
                    for m in history
                    if isinstance(m, dict)
                ][-MAX_HISTORY:]
        self.live[session.session_id] = session
        return session

    def workspaces(self) -> list[Path]:
        return sorted({workspace for workspace, _, _ in self._runtimes})

    async def aclose(self) -> None:
        running = [s.prompt_task for s in self.live.values() if s.prompt_task is not None]
        for task in running:
            task.cancel()
        # Let cancelled runs record their end in the audit trail before the stores close.
        if running:
            await asyncio.wait(running, timeout=10)
        for runtime in self._runtimes.values():
            await runtime.aclose()
        self._runtimes.clear()


def _build_runtime(
    workspace: Path, settings: EngineSettings, approver: Approver | None
) -> AgentRuntime:
    """A session's runtime, and the model client its first prompt will use (the SDK's import, TLS
    set-up, tokenizer), on the worker thread: the first prompt is as quick as the tenth."""
    from agentls.core.model_choice import prepare_quietly

    runtime = build_runtime(workspace, settings, approver=approver)
    prepare_quietly(settings.model_settings())
    return runtime
