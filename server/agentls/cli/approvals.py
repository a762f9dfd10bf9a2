"""Questions to the user on the terminal: may an agent run this command, may this edit be written.

Questions go to stderr and answers come from stdin, which must be a terminal: with no terminal
(a pipe, CI, a script) nothing is asked, the command is refused with the `--allow-command`
pattern that would allow it, and edits needing confirmation are not written. Reading stdin goes
through the event loop, so Ctrl-C and cancellation still win while a question waits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sys
from typing import TextIO

from pydantic import ValidationError

from agentls.cli import CliError
from agentls.cli.visible import visible
from agentls.core.target import ProposedEdit
from agentls.core.tools.command import Approver, CommandRequest, CommandSettings, Decision


def add_security_options(
    parser: argparse.ArgumentParser, *, confirm: bool = True, asked: str = "on the terminal"
) -> None:
    """`--run-commands`, `--allow-command` (and `--confirm`); `asked` says where commands are
    approved (the terminal, an agent panel)."""
    title = "commands and confirmations" if confirm else "commands"
    group = parser.add_argument_group(f"{title} (see docs/security.md)")
    group.add_argument(
        "--run-commands",
        action="store_true",
        help=f"offer run_command to agents that list it; each command is asked {asked}",
    )
    group.add_argument(
        "--allow-command",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run commands matching PATTERN without asking, e.g. 'pytest **' (implies "
        "--run-commands; repeatable)",
    )
    if confirm:
        group.add_argument(
            "--confirm",
            action="store_true",
            help="with --apply: show each edit and ask before writing it",
        )


def command_settings(args: argparse.Namespace) -> CommandSettings:
    allow = list(getattr(args, "allow_command", None) or [])
    enabled = bool(getattr(args, "run_commands", False) or allow)
    try:
        return CommandSettings(enabled=enabled, allow=allow)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise CliError(f"--allow-command: {message}") from None


class TerminalPrompt:
    """One question at a time on the terminal (parallel runs queue behind each other)."""

    def __init__(self, stdin: TextIO | None = None, out: TextIO | None = None) -> None:
        self.stdin = stdin or sys.stdin
        self.out = out or sys.stderr
        self._lock = asyncio.Lock()

    def available(self) -> bool:
        try:
            return self.stdin.isatty()
        except (ValueError, OSError):
            return False

    async def ask(self, question: str) -> str | None:
        """The answer line (stripped, lower case), or None at end of input."""
        async with self._lock:
            self.out.write(question)
            self.out.flush()
            return await self._read_line()

    async def _read_line(self) -> str | None:
        loop = asyncio.get_running_loop()
        fd = self.stdin.fileno()
        done: asyncio.Future[str | None] = loop.create_future()
        buffer = bytearray()

        def readable() -> None:
            chunk = os.read(fd, 1024)
            buffer.extend(chunk)
            if not done.done() and (not chunk or b"\n" in chunk):
                done.set_result(buffer.decode(errors="replace") if buffer else None)

        loop.add_reader(fd, readable)
        try:
            line = await done
        finally:
            loop.remove_reader(fd)
        return line.strip().lower() if line is not None else None


def terminal_approver(prompt: TerminalPrompt) -> Approver:
    async def approve(request: CommandRequest) -> Decision:
        if not prompt.available():
            return Decision.unasked(
                "there is no terminal to ask on; to allow it, run again with "
                f"--allow-command {shlex.quote(request.pattern)}"
            )
        how = "through the shell" if request.shell else "(no shell)"
        # A command with a control character never gets here (it is refused first); shown
        # all the same, so no field of the question can rewrite the terminal.
        agent, cwd, command = (
            visible(str(text), one_line=True)
            for text in (request.agent, request.cwd, request.command)
        )
        answer = await prompt.ask(
            f"\nagentls: agent '{agent}' wants to run a command {how} in {cwd}:\n    {command}\n"
            "Run it? [o]nce, [a]lways this session, [N]o: "
        )
        if answer in ("o", "once", "y", "yes"):
            return Decision.run_once()
        if answer in ("a", "always"):
            return Decision.always()
        return Decision.deny()

    return approve


async def confirm_each(
    prompt: TerminalPrompt, edits: list[ProposedEdit], diff_of: dict[int, str]
) -> list[str | None]:
    """For each edit: None when the user confirms it, else why it is not written."""
    if not prompt.available():
        reason = "no terminal to confirm on; run without --confirm to write edits unasked"
        return [reason] * len(edits)
    reasons: list[str | None] = []
    for index, edit in enumerate(edits):
        with contextlib.suppress(BrokenPipeError):
            prompt.out.write(visible(diff_of.get(index, "")))
        line = edit.range.start.line + 1
        agent, path = visible(edit.agent, one_line=True), visible(edit.path, one_line=True)
        answer = await prompt.ask(f"Write this edit by '{agent}' to {path} (line {line})? [y/N]: ")
        reasons.append(None if answer in ("y", "yes") else "the user declined the edit")
    return reasons
