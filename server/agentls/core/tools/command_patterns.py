"""Allow-list patterns for run_command: parse a pattern, and match a command line against it.

A pattern admits only what it names, so that a model steered by text in a file cannot widen it
(`python -m pytest **` must not become `--basetemp=/home/you`, which pytest empties):

- `shell: make test && make lint` admits that exact line (surrounding spaces aside), run through
  `/bin/sh -c`. No globs: a glob over a shell line would admit `; anything`.
- Any other pattern is split like a command line and matched word by word, each word against the
  argument at the same position. The first word, the program, is written out (no glob).
- A word without glob characters matches exactly that argument.
- A glob word (`*`, `?`, `[...]`) matches one argument: the glob never matches `/`, never matches
  an argument with a `..` component, and never matches an option (an argument starting with `-`,
  or with `@`, which pytest and others read as a file of more arguments).
- Options match only words that name them: `-q` matches `-q` (not `-xq`, not `-x`), `--maxfail=*`
  matches `--maxfail=3`. A word that starts with `-` may glob only its value, after `=`.
- A last word `**` matches any further arguments (none included) that are not options.
- Whatever a glob or `**` matches stays in the workspace: the argument, and the value after the
  first `=` of a `name=value` argument, read as a path from the workspace root (`~` as the home
  folder, symlinks followed) must lie inside it. Words written out are trusted as written.

`[*]`, `[?]` and `[[]` stand for the characters themselves; `exact_pattern` writes them.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

SHELL_PREFIX = "shell:"
ANY_REST = "**"
_ESCAPE = re.compile(r"\[([*?\[])\]")
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class ParsedCommand:
    """What would run: argv (no shell), or a shell line for `sh -c`."""

    line: str
    argv: tuple[str, ...]
    shell: bool = False

    @property
    def display(self) -> str:
        """The exact command line the user is asked about (argv quoted as a shell would need)."""
        return self.line if self.shell else shlex.join(self.argv)


def _is_glob(word: str) -> bool:
    return bool(_GLOB.search(_ESCAPE.sub("", word)))


def _literal(word: str) -> str:
    return _ESCAPE.sub(r"\1", word)


def _is_option(arg: str) -> bool:
    # `@file` too: pytest (and argparse-based tools) read more arguments, options included, from it.
    return arg.startswith(("-", "@"))


def _inside(text: str, root: Path) -> bool:
    """Whether `text`, read as a path from `root` (symlinks followed), lies inside `root`."""
    try:
        path = Path(text).expanduser() if text.startswith("~") else Path(text)
        resolved = (root / path).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unknown ~user
        return False
    return resolved == root or root in resolved.parents


def _stays_inside(arg: str, root: Path) -> bool:
    _, equals, value = arg.partition("=")
    return _inside(arg, root) and (not equals or _inside(value, root))


def _glob_matches(glob: str, arg: str, root: Path) -> bool:
    """One glob word against one argument: never across `/`, never over `..`, never outside."""
    globs, parts = glob.split("/"), arg.split("/")
    if len(globs) != len(parts) or ".." in parts:
        return False
    if not all(fnmatch.fnmatchcase(p, g) for p, g in zip(parts, globs, strict=True)):
        return False
    return _stays_inside(arg, root)


def _word_matches(word: str, arg: str, root: Path) -> bool:
    if not _is_glob(word):
        return arg == _literal(word)
    if not _is_option(word):
        return not _is_option(arg) and _glob_matches(word, arg, root)
    # An option word globs only its value: `--maxfail=*`.
    name, _, value_glob = word.partition("=")
    arg_name, equals, value = arg.partition("=")
    return bool(equals) and arg_name == _literal(name) and _glob_matches(value_glob, value, root)


@dataclass(frozen=True)
class AllowPattern:
    """One parsed allow-list entry (see the module docstring for the rules)."""

    text: str
    words: tuple[str, ...] = ()
    rest: bool = False
    shell_line: str | None = None

    @classmethod
    def parse(cls, text: str) -> AllowPattern:
        stripped = text.strip()
        if stripped.startswith(SHELL_PREFIX):
            line = stripped[len(SHELL_PREFIX) :].strip()
            if not line:
                raise ValueError(f"allow-list pattern {text!r}: nothing after 'shell:'")
            return cls(text=text, shell_line=line)
        try:
            words = shlex.split(stripped)
        except ValueError as exc:
            raise ValueError(f"allow-list pattern {text!r}: {exc}") from None
        if not words or words[0] == ANY_REST:
            raise ValueError(f"allow-list pattern {text!r}: must start with a program name")
        rest = words[-1] == ANY_REST
        if rest:
            words = words[:-1]
        for word in words:
            _check_word(text, word)
        if _is_glob(words[0]):
            raise ValueError(
                f"allow-list pattern {text!r}: the program must be written out, not {words[0]!r}"
            )
        return cls(text=text, words=tuple(words), rest=rest)

    def matches(self, command: ParsedCommand, workspace: Path) -> bool:
        """Whether this pattern admits `command`, run in `workspace`."""
        if self.shell_line is not None:
            return command.shell and command.line == self.shell_line
        if command.shell:
            return False
        argv = command.argv
        if len(argv) < len(self.words) or (len(argv) > len(self.words) and not self.rest):
            return False
        root = workspace.resolve()
        if not all(_word_matches(w, a, root) for w, a in zip(self.words, argv, strict=False)):
            return False
        return all(
            not _is_option(arg) and _stays_inside(arg, root) for arg in argv[len(self.words) :]
        )


def _check_word(text: str, word: str) -> None:
    if word == ANY_REST:
        raise ValueError(f"allow-list pattern {text!r}: '**' may only be the last word")
    if ANY_REST in word:
        raise ValueError(
            f"allow-list pattern {text!r}: '**' is a word of its own (any further arguments); "
            f"in {word!r} write '*', which matches one name and never crosses '/'"
        )
    if _is_option(word) and _is_glob(word.partition("=")[0]):
        raise ValueError(
            f"allow-list pattern {text!r}: {word!r} names options with a glob; write each "
            "option out ('-q', '--maxfail=*')"
        )


def exact_pattern(command: ParsedCommand) -> str:
    """An allow-list pattern that admits exactly this command (glob characters escaped)."""
    if command.shell:
        return f"{SHELL_PREFIX} {command.line}"
    escaped = [re.sub(r"([*?\[])", r"[\1]", word) for word in command.argv]
    return shlex.join(escaped)
