"""run_command: runs a program an agent names in the workspace, once the user allows it.

The tool exists only when settings enable it and the workspace is trusted. Each command line
either matches an allow-list pattern the user wrote or is put to the user through the adapter's
`Approver` (an editor dialog, a terminal prompt); with no one to ask, it is refused. An allowed
command runs without a shell (argv parsed like a POSIX shell would split it, no pipes, no
redirection, no variables) unless a `shell:` pattern allows that exact line; in the workspace
root; in a new process group that is killed on timeout or cancel; with a minimal environment
that carries no secrets; and with its output capped.

Allow-list patterns (settings `runCommand.allow`): see core/tools/command_patterns.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import sys
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from agentls.core.bounds import MAX_SECONDS
from agentls.core.llm import ToolSpec
from agentls.core.tools.base import Tool, ToolResult, summarize_arguments
from agentls.core.tools.command_patterns import AllowPattern, ParsedCommand, exact_pattern

COMMAND_TOOL = "run_command"
MAX_COMMAND_CHARS = 4_000
# Output the model sees: the head and the tail (where test runners print their summary).
HEAD_BYTES = 8_000
TAIL_BYTES = 12_000

# The environment a command gets; nothing else of the server's environment passes.
BASE_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ",
    "TMPDIR",
)  # fmt: skip
_SECRET_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|AUTH|COOKIE|SESSION)", re.I
)
_SHELL_OPERATOR = re.compile(r"^[;&|<>()]+$")
# Characters that could make the command line the user reads differ from the one that runs:
# control characters (terminal escapes, carriage returns, newlines), bidirectional overrides
# and invisible characters.
# Characters that could make the line a reader approves differ from the line that runs: every
# control (tab aside), format character (bidi controls, zero-width, soft hyphen, tags), line or
# paragraph separator, private-use, surrogate or unassigned code point.
_DECEPTIVE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


def _deceptive(line: str) -> str | None:
    for char in line:
        if char != "\t" and unicodedata.category(char) in _DECEPTIVE_CATEGORIES:
            return char
    return None


def is_secret_name(name: str) -> bool:
    """Environment variable names that may hold a credential (OPENAI_API_KEY, GH_TOKEN, ...)."""
    return bool(_SECRET_NAME.search(name))


def _not_a_secret(name: str) -> str:
    if is_secret_name(name):
        raise ValueError(
            f"{name!r} looks like a secret; commands never get secrets from the environment"
        )
    return name


class CommandSettings(BaseModel):
    """`runCommand.*`: whether agents may run commands, and which ones run without asking."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    allow: list[Annotated[str, Field(max_length=MAX_COMMAND_CHARS)]] = Field(
        default_factory=list, max_length=1000
    )
    timeout_seconds: float = Field(default=120.0, gt=0, le=MAX_SECONDS)
    # Names of extra environment variables passed through. A secret-looking name is refused on
    # its own (its error names its position), so the other names still pass.
    pass_env: list[Annotated[str, Field(max_length=200), AfterValidator(_not_a_secret)]] = Field(
        default_factory=list, max_length=200
    )

    @field_validator("allow")
    @classmethod
    def _patterns_parse(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            AllowPattern.parse(pattern)
        return patterns


class CommandError(ValueError):
    """A command line that cannot run; the message tells the model what to do instead."""


def parse_command(line: str, patterns: Sequence[AllowPattern]) -> ParsedCommand:
    """Parse the model's command line: a shell line only when a `shell:` pattern names it exactly."""
    if not line.strip():
        raise CommandError("command is empty")
    if len(line) > MAX_COMMAND_CHARS:
        raise CommandError(f"command is longer than {MAX_COMMAND_CHARS} characters")
    if (char := _deceptive(line)) is not None:
        raise CommandError(
            f"command contains the control or invisible character U+{ord(char):04X}; "
            "write it on one line with visible characters only"
        )
    stripped = line.strip()
    if any(p.shell_line == stripped for p in patterns):
        return ParsedCommand(line=stripped, argv=("/bin/sh", "-c", stripped), shell=True)
    lexer = shlex.shlex(stripped, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError as exc:
        raise CommandError(f"cannot split the command line: {exc}") from None
    operators = [w for w in words if _SHELL_OPERATOR.match(w)]
    if operators:
        raise CommandError(
            f"run_command runs one program without a shell, so {operators[0]!r} would not work; "
            "run a single program with its arguments (no pipes, redirections, && or ;)"
        )
    argv = tuple(shlex.split(stripped))
    return ParsedCommand(line=stripped, argv=argv)


@dataclass(frozen=True)
class CommandRequest:
    """A command an agent wants to run, as the user is asked about it."""

    run_id: str
    agent: str
    goal: str
    command: str  # the exact command line (ParsedCommand.display)
    shell: bool
    cwd: Path
    # The allow-list pattern that would admit exactly this command, for "how to allow it" hints.
    pattern: str = ""


@dataclass(frozen=True)
class Decision:
    """The user's answer: run once, run this exact command for the rest of the session, or deny."""

    allow: bool
    remember: bool = False
    reason: str = ""
    # False when nobody was asked (no terminal, an editor that cannot ask): the audit then says
    # `no_approver`, not that the user decided.
    asked: bool = True

    @classmethod
    def run_once(cls) -> Decision:
        return cls(allow=True)

    @classmethod
    def always(cls) -> Decision:
        return cls(allow=True, remember=True)

    @classmethod
    def deny(cls, reason: str = "the user denied it") -> Decision:
        return cls(allow=False, reason=reason)

    @classmethod
    def unasked(cls, reason: str) -> Decision:
        """Not run because there was no one to ask."""
        return cls(allow=False, reason=reason, asked=False)

    @property
    def label(self) -> str:
        return "always" if self.remember else "run_once" if self.allow else "deny"


# Provided by the adapter (editor dialog, terminal prompt); core knows no editor.
Approver = Callable[[CommandRequest], Awaitable[Decision]]


@dataclass
class CommandOutcome:
    exit_code: int | None
    output: str
    omitted_bytes: int
    timed_out: bool
    duration_ms: float


def command_env(
    pass_env: Sequence[str] = (), source: dict[str, str] | None = None
) -> dict[str, str]:
    """The minimal environment of a command: a few basics, the names the user passes, no secrets."""
    environ = os.environ if source is None else source
    env = {name: environ[name] for name in (*BASE_ENV, *pass_env) if name in environ}
    env = {k: v for k, v in env.items() if not is_secret_name(k)}
    env.setdefault("PATH", os.defpath)
    env["TERM"] = "dumb"
    env["NO_COLOR"] = "1"
    return env


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if sys.platform == "win32":  # no process groups: the command itself
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)


async def execute(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> CommandOutcome:
    """Run argv in its own process group; kill the group on timeout, on cancel, and when it ends."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    head = bytearray()
    tail = bytearray()
    omitted = 0

    async def pump() -> None:
        nonlocal omitted
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            room = max(HEAD_BYTES - len(head), 0)
            head.extend(chunk[:room])
            tail.extend(chunk[room:])
            if len(tail) > TAIL_BYTES:
                omitted += len(tail) - TAIL_BYTES
                del tail[: len(tail) - TAIL_BYTES]
        await proc.wait()

    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await pump()
    except TimeoutError:
        timed_out = True
    except BaseException:
        # Cancelled (or failed): the command dies with its children before the cancel goes on.
        _kill_group(proc)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(proc.wait(), 5)
        raise
    finally:
        # Whatever the command left running in its group (background jobs) ends with it.
        _kill_group(proc)
    if timed_out:
        await proc.wait()
    text = head.decode("utf-8", "replace")
    if omitted:
        text += f"\n… [output truncated: {omitted} bytes omitted] …\n"
    text += tail.decode("utf-8", "replace")
    return CommandOutcome(
        exit_code=None if timed_out else proc.returncode,
        output=text,
        omitted_bytes=omitted,
        timed_out=timed_out,
        duration_ms=(time.monotonic() - started) * 1000.0,
    )


@dataclass
class CommandPolicy:
    """Whether run_command is offered, what runs without asking, and this session's approvals."""

    workspace: Path
    settings: CommandSettings = field(default_factory=CommandSettings)
    trusted: bool = True
    approver: Approver | None = None
    # Exact command lines the user allowed "always" in this session.
    approved: set[str] = field(default_factory=set)

    @property
    def available(self) -> bool:
        return self.settings.enabled and self.trusted

    def patterns(self) -> list[AllowPattern]:
        return [AllowPattern.parse(p) for p in self.settings.allow]

    def tools_for(
        self,
        tools: Sequence[str],
        run_id: str,
        agent: str,
        goal: str,
        record: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Tool]:
        """run_command for a run whose agent lists it, when available."""
        if COMMAND_TOOL not in tools or not self.available:
            return {}
        return {COMMAND_TOOL: RunCommand(self, run_id, agent, goal, record)}

    async def decide(
        self, request: CommandRequest, parsed: ParsedCommand
    ) -> tuple[Decision, dict[str, str]]:
        """The decision and who made it (allow_list with its pattern, session, user, no_approver)."""
        for pattern in self.patterns():
            if pattern.matches(parsed, self.workspace):
                return Decision.run_once(), {"decided_by": "allow_list", "pattern": pattern.text}
        if request.command in self.approved:
            return Decision.run_once(), {"decided_by": "session"}
        if self.approver is None:
            return Decision.deny(
                "no one can approve commands here; to allow it, add the pattern "
                f"{request.pattern!r} to the runCommand.allow setting"
            ), {"decided_by": "no_approver"}
        decision = await self.approver(request)
        if decision.allow and decision.remember:
            self.approved.add(request.command)
        return decision, {"decided_by": "user" if decision.asked else "no_approver"}


def describe(data: dict[str, Any]) -> str:
    """One phrase for a run_command audit record: who decided, and how the command ended."""
    decision, by = data.get("decision"), data.get("decided_by")
    if decision is None or decision == "invalid":
        return ""
    if decision == "none":
        return "cancelled before anyone decided"
    if by == "allow_list":
        who = f"allowed by pattern {data.get('pattern')!r}"
    elif by == "session":
        who = "allowed for this session"
    elif decision == "deny":
        who = "not run: no one to ask" if by == "no_approver" else "denied by the user"
    else:
        who = "always allowed by the user" if decision == "always" else "allowed once by the user"
    if data.get("cancelled"):
        return f"{who}; cancelled"
    if data.get("timed_out"):
        return f"{who}; killed at the time limit"
    if "exit_code" in data and data["exit_code"] is not None:
        return f"{who}; exit code {data['exit_code']}"
    return who


class RunCommand:
    """The run_command tool of one run."""

    read_only = False
    # Not cut at the generic tool limit: it has its own (runCommand.timeoutSeconds), and waiting
    # for the user's answer takes as long as the user takes (a cancel still ends it).
    call_time_limit: float | None = None

    def __init__(
        self,
        policy: CommandPolicy,
        run_id: str,
        agent: str,
        goal: str,
        record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.policy = policy
        self.run_id = run_id
        self.agent = agent
        self.goal = goal
        # Records a command the run's cancel cut short (the runtime records the others).
        self.record = record

    @property
    def spec(self) -> ToolSpec:
        timeout = self.policy.settings.timeout_seconds
        return ToolSpec(
            name=COMMAND_TOOL,
            description=(
                "Run a program in the workspace root, e.g. the tests you wrote, and get its exit "
                "code and output. Runs without a shell: one program and its arguments, no pipes, "
                f"redirections or variables. The user approves each command. Time limit {timeout:g} s."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "command": {
                        "type": "string",
                        "description": "the command line, e.g. python -m pytest -q tests/test_x.py",
                    }
                },
                "required": ["command"],
            },
        )

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        line = arguments.get("command")
        if not isinstance(line, str):
            return ToolResult.error("argument 'command' must be a string (a command line)")
        try:
            parsed = parse_command(line, self.policy.patterns())
        except CommandError as exc:
            result = ToolResult.error(str(exc))
            result.data = {"command": line[:MAX_COMMAND_CHARS], "decision": "invalid"}
            return result
        request = CommandRequest(
            run_id=self.run_id,
            agent=self.agent,
            goal=self.goal,
            command=parsed.display,
            shell=parsed.shell,
            cwd=self.policy.workspace,
            pattern=exact_pattern(parsed),
        )
        audit: dict[str, Any] = {"command": parsed.display, "shell": parsed.shell}
        try:
            return await self._decide_and_run(request, parsed, audit)
        except asyncio.CancelledError:
            # The run was cancelled while the user was asked or the command ran: the request,
            # any decision, and the cancel still belong in the audit trail.
            if self.record is not None:
                self.record(
                    {
                        "arguments": summarize_arguments(arguments),
                        **audit,
                        "decision": audit.get("decision", "none"),
                        "cancelled": True,
                    }
                )
            raise

    async def _decide_and_run(
        self, request: CommandRequest, parsed: ParsedCommand, audit: dict[str, Any]
    ) -> ToolResult:
        decision, decided_by = await self.policy.decide(request, parsed)
        audit.update(decision=decision.label, **decided_by)
        if not decision.allow:
            result = ToolResult.error(
                f"the command was not run: {decision.reason or 'denied'}. Do not retry it; "
                "go on without it or say what you needed it for"
            )
            result.data = audit
            return result
        settings = self.policy.settings
        try:
            outcome = await execute(
                parsed.argv,
                cwd=self.policy.workspace,
                env=command_env(settings.pass_env),
                timeout=settings.timeout_seconds,
            )
        except FileNotFoundError:
            result = ToolResult.error(f"program {parsed.argv[0]!r} not found (PATH or workspace)")
            result.data = {**audit, "exit_code": None}
            return result
        except PermissionError:
            result = ToolResult.error(f"program {parsed.argv[0]!r} is not executable")
            result.data = {**audit, "exit_code": None}
            return result
        audit.update(
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            output_bytes_omitted=outcome.omitted_bytes,
            command_ms=round(outcome.duration_ms, 1),
        )
        if outcome.timed_out:
            status = f"killed after the {settings.timeout_seconds:g} s time limit"
        else:
            status = f"exit code {outcome.exit_code}"
        content = f"$ {parsed.display}\n[{status}]\n{outcome.output}"
        result = ToolResult(content, is_error=outcome.timed_out)
        result.data = audit
        return result
