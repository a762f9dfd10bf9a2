"""Turns proposed edits into unified diffs and, with --apply, writes them to disk (CLI only).

Only the edited ranges change: files are read and written as bytes of UTF-8 with no newline
translation, so CRLF, lone CR, a missing final newline and every untouched byte survive; the
file's permission bits are kept. A file whose text changed since the run read it is not written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from agentls.cli.visible import visible
from agentls.core.diff import applied, edited_texts, group_by_path, unified_diff
from agentls.core.target import ProposedEdit, read_exact, text_sha256

__all__ = ["applied", "edited_texts", "shown_diff", "unified_diff", "write_edits"]


class StaleFileError(Exception):
    """The file on disk is no longer the text the edit was computed on."""


def shown_diff(root: Path, edits: list[ProposedEdit]) -> str:
    """The unified diff of `edits` for the terminal: tabs and line ends as they are, every other
    control character written out (the edits themselves are untouched)."""
    return visible(unified_diff(root, edits))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_exact(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically: a unique temp file beside it, then os.replace.

    The new file keeps the old one's permission bits (a new file gets the umask's default); a
    symlink stays a symlink (its target is replaced).
    """
    path = Path(os.path.realpath(path))
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".agentls-tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_edits(
    root: Path, edits: list[ProposedEdit], bases: dict[str, str | None] | None = None
) -> list[tuple[bool, str | None]]:
    """Write each edited file atomically; one (applied, reason) per edit.

    An edit applies only to the text it was computed on: its `base_sha256`, else `bases[path]`
    (the hash of the text the run read). When the file changed since, it is left alone and the
    reason says so.
    """
    results: dict[str, tuple[bool, str | None]] = {}
    for rel, group in group_by_path(edits).items():
        path = root / rel
        try:
            creates = any(e.creates_file for e in group)
            if creates and path.exists():
                raise StaleFileError(
                    f"{rel} was created since the run proposed creating it; it was not overwritten"
                )
            before = "" if creates else read_exact(path)
            expected = next((e.base_sha256 for e in group if e.base_sha256), None)
            expected = expected or (bases or {}).get(rel)
            if expected is not None and text_sha256(before) != expected:
                raise StaleFileError(
                    f"{rel} changed since the run read it; the edit was not written so your newer "
                    "text stays (run the agent again on the current file)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            write_exact(path, applied(before, group))
            results[rel] = (True, None)
        except StaleFileError as exc:
            results[rel] = (False, str(exc))
        except UnicodeDecodeError:
            results[rel] = (False, f"cannot write {rel}: it is no longer a UTF-8 text file")
        except OSError as exc:
            results[rel] = (False, f"cannot write {rel}: {exc.strerror or exc}")
    return [results[e.path] for e in edits]
