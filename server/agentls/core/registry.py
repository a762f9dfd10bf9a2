"""The agents in effect: definition folders in order of precedence (built-ins, the user's, the
workspace's), loaded into a registry by name, later sources winning and two files of one source
naming the same agent reported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentls.core.definitions import (
    DefinitionError,
    LoadedAgent,
    LoadResult,
    UnknownAgentError,
    load_file,
)


def _definition_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in suffixes)


def builtin_folder() -> Path:
    return Path(__file__).resolve().parent.parent / "builtin_agents"


def user_folder() -> Path:
    return Path.home() / ".config" / "agentls" / "agents"


@dataclass(frozen=True)
class DefinitionSource:
    folder: Path
    source: str
    claude: bool = False


def default_sources(
    workspace: Path | None,
    extra_folders: Sequence[Path] = (),
    *,
    include_workspace: bool = True,
) -> list[DefinitionSource]:
    """Where definitions come from, lowest precedence first."""
    sources = [
        DefinitionSource(builtin_folder(), "builtin"),
        DefinitionSource(user_folder(), "user"),
    ]
    sources += [DefinitionSource(folder, "user") for folder in extra_folders]
    if workspace is not None and include_workspace:
        sources.append(DefinitionSource(workspace / ".claude" / "agents", "claude", claude=True))
        sources.append(DefinitionSource(workspace / ".agentls" / "agents", "workspace"))
    return sources


@dataclass(frozen=True)
class NameClash:
    """Another definition file of the same source that names the same agent.

    Within one source the file that loads first (by name) is kept and the other is ignored; a
    later source overriding an earlier one (a workspace agent replacing a built-in) is no clash.
    """

    other: LoadedAgent
    this_is_ignored: bool

    def message(self, name: str) -> str:
        where = f"{self.other.path}:{self.other.line}"
        if self.this_is_ignored:
            return (
                f"agent {name!r} is already defined in {where}; rename one of them "
                "(this file is ignored)"
            )
        return f"agent {name!r} is also defined in {where}, which is ignored; rename one of them"


class AgentRegistry:
    """The agents in effect, by name, with where each came from and the errors met loading them."""

    def __init__(self, result: LoadResult | None = None) -> None:
        self._agents: dict[str, LoadedAgent] = {}
        self.errors: list[DefinitionError] = []
        # Every file that defined an agent, kept or ignored, with its load order and its source's
        # folder (resolved off the event loop, at load), for `name_clash`.
        self._files: list[tuple[tuple[int, Path], Path, LoadedAgent]] = []
        self._folders: dict[Path, tuple[int, str]] = {}
        if result:
            for agent in result.agents:
                self._agents[agent.definition.name] = agent
            self.errors = list(result.errors)

    @classmethod
    def load(cls, sources: Sequence[DefinitionSource]) -> AgentRegistry:
        merged = LoadResult()
        files: list[tuple[tuple[int, Path], Path, LoadedAgent]] = []
        folders: dict[Path, tuple[int, str]] = {}
        # Later sources override earlier ones on purpose (a workspace agent replaces a built-in);
        # two files of one source naming the same agent is a mistake, reported on the second.
        defined_in: dict[tuple[str, str], LoadedAgent] = {}
        for index, src in enumerate(sources):
            folders.setdefault(src.folder.resolve(), (index, src.source))
            suffixes = (".md",) if src.claude else (".yaml", ".yml", ".md")
            for path in _definition_files(src.folder, suffixes):
                one = load_file(path, src.source, claude=src.claude)
                merged.errors.extend(one.errors)
                for agent in one.agents:
                    resolved = path.resolve()
                    files.append(((index, resolved), resolved, agent))
                    key = (src.source, agent.definition.name)
                    first = defined_in.setdefault(key, agent)
                    if first is not agent:
                        clash = NameClash(first, this_is_ignored=True)
                        merged.errors.append(
                            DefinitionError(
                                path,
                                clash.message(agent.definition.name),
                                line=agent.line,
                                field="name",
                            )
                        )
                        continue
                    merged.agents.append(agent)
        registry = cls(merged)
        registry._files = files
        registry._folders = folders
        return registry

    def name_clash(self, path: Path, name: str) -> NameClash | None:
        """Whether a definition at `path` (resolved) naming `name` clashes with another file of
        its source as loaded from disk, and which of the two is ignored.

        `name` is the one the file says now (an editor's buffer), not necessarily on disk.
        """
        folder = self._folders.get(path.parent)
        if folder is None:
            return None
        index, source = folder
        others = [
            (order, agent)
            for order, file, agent in self._files
            if file != path and agent.source == source and agent.definition.name == name
        ]
        if not others:
            return None
        order, other = min(others, key=lambda entry: entry[0])
        return NameClash(other, this_is_ignored=order < (index, path))

    def add(self, agent: LoadedAgent) -> None:
        self._agents[agent.definition.name] = agent

    def get(self, name: str) -> LoadedAgent:
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgentError(name, self._agents) from None

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def __iter__(self) -> Iterator[LoadedAgent]:
        return iter(sorted(self._agents.values(), key=lambda a: a.definition.name))

    def __len__(self) -> int:
        return len(self._agents)

    def names(self) -> list[str]:
        return sorted(self._agents)
