"""Options and helpers shared by the CLI commands: model flags, settings, targets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentls.cli import CliError, workspace_of
from agentls.cli.visible import visible
from agentls.core.bounds import MAX_TOKENS  # re-exported: the CLI's commands import it from here
from agentls.core.budget_grants import (
    DEFAULT_MIN_OUTPUT_TOKENS,
    DEFAULT_WAIT_SECONDS,
    MAX_WAIT_SECONDS,
)
from agentls.core.engine_settings import MAX_MIN_OUTPUT_TOKENS, EngineSettings
from agentls.core.target import Target, TextRange, read_exact


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "model (default: OPENAI_* environment, else the embedded model)"
    )
    group.add_argument("--model", help="model name; 'embedded' forces the local SmolLM2 model")
    group.add_argument("--base-url", help="OpenAI-compatible server URL (default: OPENAI_BASE_URL)")
    group.add_argument(
        "--max-output-tokens",
        type=positive_int,
        default=None,
        metavar="N",
        help="output tokens per model call (default: the maxOutputTokens setting, else 1024)",
    )


def add_budget_options(parser: argparse.ArgumentParser) -> None:
    """`--budget-wait` and `--min-output-tokens`: the CLI's `budget.waitSeconds` and
    `budget.minOutputTokens` settings."""
    group = parser.add_argument_group("budget")
    group.add_argument(
        "--budget-wait",
        type=wait_seconds,
        default=None,
        metavar="SECONDS",
        help="how long a model call waits for other runs' calls in flight to settle before the "
        f"budget refuses it; 0: never wait (default: {DEFAULT_WAIT_SECONDS:g})",
    )
    group.add_argument(
        "--min-output-tokens",
        type=min_output_tokens,
        default=None,
        metavar="N",
        help="the smallest answer worth a model call: fewer output tokens left in the budget "
        f"refuse the call (default: {DEFAULT_MIN_OUTPUT_TOKENS})",
    )


def wait_seconds(value: str) -> float:
    """Seconds from 0 to MAX_WAIT_SECONDS (argparse names the option when this refuses)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, got {_shown(value)}"
        ) from None
    if not 0 <= number <= MAX_WAIT_SECONDS:
        raise argparse.ArgumentTypeError(
            f"expected seconds from 0 to {MAX_WAIT_SECONDS:g}, got {_shown(value)}"
        )
    return number


def min_output_tokens(value: str) -> int:
    """A whole number from 1 to MAX_MIN_OUTPUT_TOKENS."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {_shown(value)}") from None
    if not 0 < number <= MAX_MIN_OUTPUT_TOKENS:
        raise argparse.ArgumentTypeError(
            f"expected a number from 1 to {MAX_MIN_OUTPUT_TOKENS:,}, got {_shown(value)}"
        )
    return number


def positive_int(value: str) -> int:
    """A whole number from 1 to MAX_TOKENS (argparse names the option when this refuses)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 0 < number <= MAX_TOKENS:
        raise argparse.ArgumentTypeError(
            f"expected a number from 1 to {MAX_TOKENS:,}, got {_shown(value)}"
        )
    return number


def _shown(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def min_output_tokens_of(args: argparse.Namespace, default: int = DEFAULT_MIN_OUTPUT_TOKENS) -> int:
    """The minimum answer in force. One the user gave above what a call may ask for could never be
    granted: refused. The default (the setting's, else 32) follows a smaller maximum."""
    given: int | None = getattr(args, "min_output_tokens", None)
    most: int = getattr(args, "max_output_tokens", None) or 1024
    if given is None:
        return min(default, most)
    if given > most:
        raise CliError(
            f"--min-output-tokens {given:,} is more than --max-output-tokens {most:,}: a model "
            "call never asks for more than --max-output-tokens, so no call could get the minimum; "
            "lower --min-output-tokens or raise --max-output-tokens"
        )
    return given


def settings_from(
    args: argparse.Namespace, *, warn_untrusted: bool = True, workspace_file: bool = True
) -> EngineSettings:
    """The engine settings: the user's settings file, the workspace's `.agentls/settings.json`
    (`workspace_file`; an untrusted workspace's may only tighten), then the command-line options,
    which win. The CLI trusts the folder it runs in (the user chose it) unless `--untrusted`."""
    from agentls.cli.approvals import command_settings

    trusted = not getattr(args, "untrusted", False)
    files = file_settings(workspace_of(args) if workspace_file else None, trusted=trusted)
    most = getattr(args, "max_output_tokens", None) or files.max_output_tokens
    args.max_output_tokens = most
    least = min_output_tokens_of(args, files.budget.min_output_tokens)
    wait = getattr(args, "budget_wait", None)
    flags = command_settings(args)
    settings = files.model_copy(
        update={
            "model": getattr(args, "model", None) or files.model,
            "base_url": getattr(args, "base_url", None) or files.base_url,
            "max_output_tokens": most,
            "budget": files.budget.model_copy(
                update={
                    "wait_seconds": files.budget.wait_seconds if wait is None else wait,
                    "min_output_tokens": least,
                }
            ),
            "workspace_trusted": trusted,
            "run_command": flags if flags.enabled else files.run_command,
        }
    )
    if warn_untrusted:
        warn_if_untrusted(workspace_of(args), settings)
    return settings


def file_settings(workspace: Path | None, *, trusted: bool) -> EngineSettings:
    """The settings files' engine settings, each problem (and each workspace setting an untrusted
    workspace may not change) a warning naming the file and the key."""
    from agentls.core.settings import parse_settings
    from agentls.core.settings_scope import restrict_untrusted
    from agentls.core.user_settings import read_user_settings

    user = read_user_settings()
    problems = list(user.problems)
    local = read_user_settings(workspace / WORKSPACE_SETTINGS) if workspace is not None else None
    if local is not None:
        problems += local.problems
    merged, more = parse_settings(user.layer, local.layer if local is not None else None)
    problems += more
    lower: dict[str | None, int] = {}
    if not trusted and local is not None and local.layer:
        restricted = restrict_untrusted(merged, user.settings)
        merged, lower = restricted.settings, restricted.lower_limits
        problems += [
            f"{local.path}: {name} ignored: the workspace is untrusted"
            for name in restricted.ignored
        ]
    for problem in problems:
        print(f"agentls: warning: {visible(problem, one_line=True)}", file=sys.stderr)
    return merged.engine(trusted=trusted, lower_limits=lower)


# A workspace's own settings, in the schema of the user's settings file.
WORKSPACE_SETTINGS = Path(".agentls") / "settings.json"


def team_database_url(args: argparse.Namespace) -> str | None:
    """The team database as `agentls run` resolves it: the environment (which --database-url
    sets), else the settings files' `databaseUrl` (the workspace's only when trusted); None:
    the workspace's own files. Every command that reads the ledger or the audit trail uses it,
    so none of them shows a team's numbers from one place and a laptop's from another."""
    from agentls.core.stores.select import database_url

    if (url := database_url()) is not None:
        return url
    trusted = not getattr(args, "untrusted", False)
    return database_url(file_settings(workspace_of(args), trusted=trusted).database_url)


def warn_if_untrusted(workspace: Path, settings: EngineSettings) -> None:
    """With --untrusted, say what the workspace has that this command does not use."""
    if settings.workspace_trusted:
        return
    from agentls.core.trust import ignored_when_untrusted, untrusted_message

    items = ignored_when_untrusted(
        workspace, settings.agent_folders, run_command=settings.run_command.enabled
    )
    if items:
        message = untrusted_message(items, "Run without --untrusted to use them.")
        print(f"agentls: warning: {message}", file=sys.stderr)


def parse_lines(spec: str) -> tuple[int, int]:
    """'A-B' or 'A' (1-based, inclusive) → (A, B)."""
    try:
        if "-" in spec:
            first_s, last_s = spec.split("-", 1)
            first, last = int(first_s), int(last_s)
        else:
            first = last = int(spec)
    except ValueError:
        raise CliError(
            f"--lines {spec!r}: expected A-B with line numbers, e.g. --lines 10-24"
        ) from None
    if first < 1 or last < first:
        raise CliError(f"--lines {spec!r}: lines start at 1 and B must not come before A")
    return first, last


def target_from(args: argparse.Namespace, file: Path, lines: str | None) -> Target:
    """The target a `--file` names: relative to the workspace, as `--tasks` entries are."""
    workspace = workspace_of(args)
    path = (file if file.is_absolute() else workspace / file).resolve()
    if not path.is_file():
        beside = (Path.cwd() / file).resolve()
        if not file.is_absolute() and beside != path and beside.is_file():
            raise CliError(
                f"--file {file}: no such file in the workspace {workspace} (--file is relative "
                f"to the workspace; give {beside} as an absolute path or relative to the workspace)"
            )
        raise CliError(f"--file {file}: no such file in the workspace {workspace}")
    if workspace != path and workspace not in path.parents:
        raise CliError(f"--file {file}: outside the workspace {workspace} (use --workspace)")
    try:
        text = read_exact(path)
    except UnicodeDecodeError:
        raise CliError(f"--file {file}: not a UTF-8 text file") from None
    if lines is None:
        return Target.read_as(path, text)
    first, last = parse_lines(lines)
    try:
        rng = TextRange.whole_lines(first, last, text)
    except ValueError as exc:
        raise CliError(f"--lines {lines}: {exc}") from None
    return Target.read_as(path, text, rng)
