"""The prompt's content blocks: its text, and the files and selections the editor attached.

An attached file (`resource_link`) or selection (embedded `resource` with text) becomes the run's
target. A selection maps to a range of its file when the URI names lines (`#L10-20`, Zed's
`#L10:20`) or when its text occurs exactly once in the file; otherwise the whole file is the
target and the selected text goes into the goal.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from agentls.core.target import Target, TextRange, position_of, slice_range

# Reads a file's text as the user sees it (the client's buffer when it offers fs, else the disk).
Reader = Callable[[Path], Awaitable[str]]

_LINES = re.compile(r"^L(\d+)(?:[-:,]L?(\d+))?$")


class ResourceError(ValueError):
    """An attachment that cannot be the target; the message names it and says what to do."""


@dataclass(frozen=True)
class Attachment:
    uri: str
    selection: str | None = None  # embedded text; None for a plain file link


@dataclass(frozen=True)
class PromptParts:
    text: str
    attachments: list[Attachment]
    ignored: list[str]  # kinds of blocks agentls cannot use (image, audio, binary resources)


def split_prompt(blocks: Sequence[Any]) -> PromptParts:
    """Text blocks joined, attachments in order, and what was left out."""
    texts: list[str] = []
    attachments: list[Attachment] = []
    ignored: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind == "resource_link":
            attachments.append(Attachment(block.uri))
        elif kind == "resource" and isinstance(getattr(block.resource, "text", None), str):
            attachments.append(Attachment(block.resource.uri, block.resource.text))
        else:
            ignored.append(str(kind))
    return PromptParts("\n".join(texts).strip(), attachments, ignored)


def is_file(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    return scheme == "file" or (scheme == "" and uri.startswith("/"))


def path_of(uri: str) -> tuple[Path, str]:
    """The file path of a `file://` URI (or an absolute path) and its fragment."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)), parsed.fragment
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(unquote(parsed.path)), parsed.fragment
    raise ResourceError(
        f"The attachment {uri!r} is not a file; attach a file or a selection from a file."
    )


def inside(workspace: Path, path: Path) -> Path:
    real = path.resolve()
    if real != workspace and workspace not in real.parents:
        raise ResourceError(
            f"The attachment {path} is outside the workspace {workspace}. Attach a file under "
            "it, or open the folder that contains the file as the session's workspace."
        )
    return real


async def target_of(attachment: Attachment, workspace: Path, read: Reader) -> tuple[Target, str]:
    """The run's target for an attachment and any selected text the range could not hold."""
    path, fragment = path_of(attachment.uri)
    real = inside(workspace, path)
    try:
        text = await read(real)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ResourceError(f"Cannot read the attachment {path}: {exc}") from None
    if attachment.selection is None:
        return Target(path=real, text=text), ""
    rng = selection_range(text, attachment.selection, fragment)
    if rng is None:
        return Target(path=real, text=text), attachment.selection
    return Target(path=real, range=rng, text=text), ""


def selection_range(text: str, selection: str, fragment: str) -> TextRange | None:
    """Where a selection lies in its file's text, when the fragment or a unique match says so."""
    match = _LINES.match(fragment)
    if match:
        first = int(match.group(1))
        last = int(match.group(2) or first)
        try:
            rng = TextRange.whole_lines(first, max(first, last), text)
        except ValueError:
            rng = None
        if rng is not None and _same(slice_range(text, rng), selection):
            return rng
    if not selection.strip():
        return None
    start = text.find(selection)
    if start < 0 or text.find(selection, start + 1) >= 0:
        return None
    end = start + len(selection)
    return TextRange(start=position_of(text, start), end=position_of(text, end))


def _same(a: str, b: str) -> bool:
    return a.rstrip("\r\n") == b.rstrip("\r\n") or not b.strip()
