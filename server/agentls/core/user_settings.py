"""The user's settings file, `~/.config/agentls/settings.json`: the user's own configuration for
every front end, next to `mcp.json` and `agents/` in the same folder.

It holds the `agentls` settings section (camelCase, the one model of core/settings.py), e.g.
`{"trustedFolders": ["/home/me/code"], "budget": {"perRun": 20000}}`. Being the user's, not a
repository's, it may trust folders and loosen settings that a workspace's own files may not
(core/settings_scope.py). The language server reads all of it as the layer below the editor's;
`agentls acp` reads the trust settings from it. The API key is never read from it.

Reading it never fails: a missing file is an empty layer; a file too large, not JSON or not an
object is ignored, and an invalid or unknown key is left out; each problem is one sentence
naming the file and the key (or line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from agentls.core.settings import Settings, parse_settings

SETTINGS_FILE = "settings.json"
# A settings file is a few hundred bytes; anything this big is not one.
MAX_SETTINGS_BYTES = 1_000_000
SECRET_KEYS = frozenset({"apiKey"})


def config_dir() -> Path:
    """The user's agentls folder: `~/.config/agentls` (mcp.json, agents/ and settings.json)."""
    return Path.home() / ".config" / "agentls"


def user_settings_file() -> Path:
    return config_dir() / SETTINGS_FILE


@dataclass
class UserSettings:
    """The file's valid settings as a layer (camelCase dict), and what was wrong with it."""

    path: Path
    layer: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings.model_validate(self.layer)


def read_user_settings(path: Path | None = None) -> UserSettings:
    """Read and validate the user's settings file (blocking: call it off the event loop)."""
    path = path or user_settings_file()
    found = UserSettings(path)
    raw = _read_json(path, found.problems)
    if raw is None:
        return found
    if not isinstance(raw, dict):
        found.problems.append(
            f"{path}: expected a JSON object of settings, got {type(raw).__name__}; ignored"
        )
        return found
    for key in SECRET_KEYS & raw.keys():
        found.problems.append(
            f"{path}: {key} is never read from a settings file; set OPENAI_API_KEY in the "
            "environment instead"
        )
    layer = {k: v for k, v in raw.items() if k not in SECRET_KEYS and v is not None}
    found.problems += [f"{path}: unknown setting {name}; ignored" for name in unknown_keys(layer)]
    settings, problems = parse_settings(layer)
    found.problems += [f"{path}: {_without_prefix(p)}" for p in problems]
    found.layer = settings.model_dump(by_alias=True, exclude_unset=True)
    return found


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SETTINGS_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        # No file; or a folder on its way is a file (`.agentls` itself), which whatever uses
        # that folder names with what to do: said once there, not twice.
        return None
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({exc.strerror or exc}); ignored")
        return None
    if len(data) > MAX_SETTINGS_BYTES:
        problems.append(f"{path}: larger than {MAX_SETTINGS_BYTES:,} bytes; ignored")
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text; ignored")
    except json.JSONDecodeError as exc:
        problems.append(
            f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg}); ignored"
        )
    return None


def unknown_keys(layer: dict[str, Any], model: type[BaseModel] = Settings) -> list[str]:
    """Dotted names of keys the model does not have (a typo such as `trustedFolder`)."""
    names = {to_camel(name): name for name in model.model_fields} | {
        name: name for name in model.model_fields
    }
    out: list[str] = []
    for key, value in layer.items():
        if key not in names:
            out.append(key)
            continue
        nested = _model_of(model.model_fields[names[key]].annotation)
        if nested is not None and isinstance(value, dict):
            out += [f"{key}.{sub}" for sub in unknown_keys(value, nested)]
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings object a field holds (budget, audit, runCommand), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _without_prefix(problem: str) -> str:
    # parse_settings names keys as `agentls.budget.total` (the editor's section); the file's
    # keys have no section.
    return problem.replace("setting agentls.", "", 1).replace("keeping the default", "ignored")
