"""What an untrusted workspace's own settings may change: they may tighten, never loosen.

Editors fill the settings they send a language server from the user's files and the project's
alike (Emacs .dir-locals.el, .helix/languages.toml, .zed/settings.json, .vscode/settings.json),
and the server cannot tell which. So in an untrusted workspace a setting that would loosen
counts only from the user's own configuration (the editor's initializationOptions, the user's
settings file): the workspace cannot trust itself, pick the model server the key goes to, start
programs, or raise a limit. Lowering a limit or asking for confirmations is always taken.

The table `RULES` says, for every setting, which direction loosens; a test checks that every
field of the settings model is in it, so a new setting needs a decision here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from agentls.core.settings import Settings


class Rule(enum.Enum):
    USER_ONLY = "user only"  # any value that differs from the user's loosens
    FALSE_ONLY = "may only turn off"  # True loosens (trust, generated agents' edit tools)
    TRUE_ONLY = "may only turn on"  # False loosens (edit confirmation)
    AT_MOST = "may only lower"  # a ceiling; None is no ceiling
    AT_LEAST = "may only raise"  # a floor, or a retention where None keeps everything
    LEDGER = "may only lower the ledger's limit"  # budget limits stored in the ledger


# Keyed by the model's field path; shown to the user by the wire (camelCase) name.
RULES: dict[tuple[str, ...], Rule] = {
    ("model",): Rule.USER_ONLY,
    ("base_url",): Rule.USER_ONLY,
    ("api_key",): Rule.USER_ONLY,
    ("mcp_servers",): Rule.USER_ONLY,
    ("agent_folders",): Rule.USER_ONLY,
    ("run_command",): Rule.USER_ONLY,
    ("trusted_folders",): Rule.USER_ONLY,
    ("trust_workspace",): Rule.FALSE_ONLY,
    ("allow_generated_edit_tools",): Rule.FALSE_ONLY,
    ("confirm_edits",): Rule.TRUE_ONLY,
    ("max_parallel",): Rule.AT_MOST,
    ("max_depth",): Rule.AT_MOST,
    ("max_output_tokens",): Rule.AT_MOST,
    ("mcp_call_timeout",): Rule.AT_MOST,
    ("budget", "per_run"): Rule.AT_MOST,
    ("budget", "wait_seconds"): Rule.AT_MOST,
    ("budget", "min_output_tokens"): Rule.AT_LEAST,
    ("budget", "total"): Rule.LEDGER,
    ("budget", "per_agent"): Rule.LEDGER,
    ("audit", "retention_days"): Rule.AT_LEAST,
    # Where traces go is where a repository could send them; content out only when you say so.
    ("telemetry", "otlp_endpoint"): Rule.USER_ONLY,
    ("telemetry", "capture_content"): Rule.FALSE_ONLY,
    # What a call costs is the user's word: a repository pricing its model at 0 would slip it
    # under a dollar limit.
    ("prices",): Rule.USER_ONLY,
    # libpq sends the user's password to whatever database the URL names.
    ("database_url",): Rule.USER_ONLY,
}


@dataclass
class Restricted:
    """The settings in force, what the workspace asked that is not, and its ledger limits."""

    settings: Settings
    # Wire names of the workspace's values that were not taken, with the reason.
    ignored: list[str] = field(default_factory=list)
    # Limits (agent None: the total) written to the ledger only where they lower it.
    lower_limits: dict[str | None, int] = field(default_factory=dict)


def wire_name(path: tuple[str, ...]) -> str:
    """`("budget", "per_run")` -> `budget.perRun`."""
    first, *rest = path
    return ".".join(_camel(p) for p in (first, *rest))


def _camel(name: str) -> str:
    head, *tail = name.split("_")
    return head + "".join(t.title() for t in tail)


def _get(settings: Settings, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


def _set(settings: Settings, path: tuple[str, ...], value: Any) -> None:
    owner: Any = settings
    for part in path[:-1]:
        owner = getattr(owner, part)
    setattr(owner, path[-1], value)


def _at_most(value: Any, user: Any) -> bool:
    return user is None or (value is not None and value <= user)


def _at_least(value: Any, user: Any) -> bool:
    return value is None or (user is not None and value >= user)


def _allowed(rule: Rule, value: Any, user: Any) -> bool:
    if rule is Rule.FALSE_ONLY:
        return value is False
    if rule is Rule.TRUE_ONLY:
        return value is True
    if rule is Rule.AT_MOST:
        return _at_most(value, user)
    if rule is Rule.AT_LEAST:
        return _at_least(value, user)
    return False


def restrict_untrusted(merged: Settings, user: Settings) -> Restricted:
    """The settings of an untrusted workspace: `merged` (every layer, the workspace's own last)
    kept to `user` (the user's own layers) wherever it would loosen.

    Budget limits stored in the ledger (`budget.total`, `budget.perAgent`) stay the user's in the
    settings; the workspace's lower ones come back as `lower_limits`, which the ledger takes only
    where they are below the limit in force (the user may have set one with `agentls budget set`).
    """
    out = merged.model_copy(deep=True)
    result = Restricted(out)
    for path, rule in RULES.items():
        value, mine = _get(merged, path), _get(user, path)
        if value == mine:
            continue
        if rule is Rule.LEDGER:
            _set(out, path, _get(user, path))
            _ledger_limits(path, value, mine, result)
        elif _allowed(rule, value, mine):
            continue
        else:
            _set(out, path, mine)
            result.ignored.append(f"{wire_name(path)} ({rule.value})")
    return result


def _ledger_limits(path: tuple[str, ...], value: Any, user: Any, result: Restricted) -> None:
    name = wire_name(path)
    if path == ("budget", "total"):
        if value is not None and _at_most(value, user):
            result.lower_limits[None] = value
        else:
            result.ignored.append(f"{name} ({Rule.AT_MOST.value})")
        return
    for agent, limit in value.items():
        if limit != user.get(agent) and _at_most(limit, user.get(agent)):
            result.lower_limits[agent] = limit
        elif limit != user.get(agent):
            result.ignored.append(f"{name}.{agent} ({Rule.AT_MOST.value})")
    if any(agent not in value for agent in user):
        result.ignored.append(f"{name} (may not remove your limits)")
