"""Asks the user in the editor before an agent runs a command (window/showMessageRequest).

The question shows the agent, the exact command line, the folder it runs in and the run's goal;
the answers are Run once, Always for this session (this exact command line, until the server
stops) and Deny. A dismissed question or an editor that cannot ask counts as Deny.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types

from agentls.core.tools.command import Approver, CommandRequest, Decision

if TYPE_CHECKING:
    from agentls.lsp.server import AgentLanguageServer

RUN_ONCE = "Run once"
ALWAYS = "Always for this session"
DENY = "Deny"


def question(request: CommandRequest) -> str:
    goal = " ".join(request.goal.split())
    if len(goal) > 200:
        goal = goal[:199] + "…"
    how = "through the shell" if request.shell else "(no shell)"
    return (
        f"agentls: agent '{request.agent}' wants to run a command {how} in {request.cwd}:\n\n"
        f"{request.command}\n\nGoal: {goal}"
    )


async def ask_user(ls: AgentLanguageServer, params: types.ShowMessageRequestParams) -> str | None:
    """The title of the action the user chose (None: dismissed).

    Cancelled (the run was cancelled), the question is withdrawn with $/cancelRequest, so a
    client that can close it does.
    """
    msg_id = f"agentls-ask-{uuid.uuid4().hex}"
    try:
        choice = await ls.protocol.send_request_async(
            types.WINDOW_SHOW_MESSAGE_REQUEST, params, msg_id=msg_id
        )
    except asyncio.CancelledError:
        ls.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        raise
    return getattr(choice, "title", None) if choice is not None else None


def command_approver(ls: AgentLanguageServer) -> Approver:
    async def approve(request: CommandRequest) -> Decision:
        params = types.ShowMessageRequestParams(
            type=types.MessageType.Warning,
            message=question(request),
            actions=[types.MessageActionItem(title=t) for t in (RUN_ONCE, ALWAYS, DENY)],
        )
        try:
            title = await ask_user(ls, params)
        except Exception as exc:  # an editor that cannot ask: nothing runs
            return Decision.unasked(f"the editor could not ask the user ({exc})")
        if title == RUN_ONCE:
            return Decision.run_once()
        if title == ALWAYS:
            return Decision.always()
        if title == DENY:
            return Decision.deny()
        return Decision.deny("the user dismissed the question")

    return approve
