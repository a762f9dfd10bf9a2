"""Engine values in their wire form (camelCase JSON) and LSP positions in engine form.

The engine counts characters in code points; LSP clients usually count UTF-16 units (or the
encoding negotiated at initialize). Positions convert both ways over LSP's line model
(`core.lines`), so a line with emoji or a form feed still edits the right text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument

from agentls.core import lines
from agentls.core.events import RunEvent, Usage
from agentls.core.pricing import format_usd
from agentls.core.target import Position, ProposedEdit, TextRange, position_of, read_exact


def usage(u: Usage) -> dict[str, Any]:
    return {
        "inputTokens": u.input_tokens,
        "cachedInputTokens": u.cached_input_tokens,
        "outputTokens": u.output_tokens,
        "reasoningTokens": u.reasoning_tokens,
        "total": u.total,
        "estimated": u.estimated,
    }


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel(str(k)): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def event(e: RunEvent, root: Path | None = None) -> dict[str, Any]:
    return {
        "eventId": e.event_id,
        "time": e.time,
        "runId": e.run_id,
        "parentRunId": e.parent_run_id,
        "depth": e.depth,
        "agent": e.agent,
        "goal": e.goal,
        "kind": e.kind.value,
        "status": e.status.value,
        "usage": usage(e.usage),
        "durationMs": e.duration_ms,
        "artifacts": [edit_artifact(a, root) for a in e.artifacts],
        "error": e.error,
        "data": _camel_keys(e.data),
        "user": e.user,
        "workspace": e.workspace,
        "frontEnd": e.front_end,
    }


def edit_artifact(artifact: dict[str, Any], root: Path | None) -> dict[str, Any]:
    out = _camel_keys(artifact)
    if root is not None and "path" in artifact:
        out["uri"] = from_fs_path(str(root / artifact["path"]))
    return out


def log_line(e: RunEvent) -> str:
    """One line per audit event, for window/logMessage (what Neovim or Emacs users read)."""
    head = f"[agentls] {e.agent} {e.kind.value}"
    d = e.data
    if e.kind.value == "model_call":
        call = d.get("call_usage", {})
        tokens = call.get("input_tokens", 0) + call.get("output_tokens", 0)
        head += f" turn={d.get('turn')} tokens={tokens} run_total={e.usage.total}"
        if d.get("cost_usd") is not None:
            head += f" cost={format_usd(d['cost_usd'])}"
    elif e.kind.value == "tool_call":
        head += f" {d.get('tool')}({d.get('arguments', '')})" + (
            " error" if d.get("is_error") else ""
        )
    elif e.kind.value == "started":
        head += f" goal={e.goal!r}" + (f" path={d['path']}" if d.get("path") else "")
    elif e.is_terminal:
        head += f" tokens={e.usage.total} duration={(e.duration_ms or 0) / 1000:.1f}s"
        if d.get("cost_usd") is not None:
            head += f" cost={format_usd(d['cost_usd'])}"
    if e.error:
        head += f" error={e.error}"
    for warning in ([d["warning"]] if d.get("warning") else []) + list(d.get("warnings") or []):
        head += f" warning={warning}"
    return _one_line(f"{head} run={e.run_id[:8]}")


# Line breaks (CR, LF, NEL, U+2028/9) and other control characters a message may carry.
_BREAKS = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _one_line(text: str) -> str:
    """The log mirror's promise: one line. Breaks read as `⏎`, other controls as `\\xNN`."""
    text = _BREAKS.sub(" ⏎ ", text)
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def position_encoding(doc: TextDocument | None) -> str:
    """The negotiated position encoding ('utf-16' unless the client chose another)."""
    enc = doc.position_codec.encoding if doc is not None else None
    return str(getattr(enc, "value", enc) or "utf-16")


def document_text(doc: TextDocument | None, uri: str | None = None) -> str | None:
    """The text positions refer to: the open buffer, else the file on disk exactly as stored."""
    if doc is not None:
        return doc.source
    path = to_fs_path(uri) if uri else None
    if path is None:
        return None
    try:
        return read_exact(Path(path))
    except (OSError, UnicodeDecodeError):
        return None


def engine_range(doc: TextDocument, rng: types.Range, *, text: str | None = None) -> TextRange:
    """A client range of `text` (default: the document's) in engine positions."""
    text = doc.source if text is None else text
    encoding = position_encoding(doc)
    return TextRange(
        start=engine_position(text, rng.start, encoding),
        end=engine_position(text, rng.end, encoding),
    )


def engine_position(text: str, pos: types.Position, encoding: str = "utf-16") -> Position:
    """An LSP position (in `encoding` units) as a code-point position of `text`.

    Lines are LSP's (`core.lines`), not pygls's `doc.lines`, which also splits on form feeds and
    other separators. A line past the last is the end of the text (a selection of whole lines
    ends there); a character past a line's end is that end.
    """
    if pos.line >= lines.line_count(text):
        return position_of(text, len(text))
    return Position(
        line=pos.line,
        character=lines.from_client_character(text, pos.line, pos.character, encoding),
    )


def client_position(text: str, pos: Position, encoding: str = "utf-16") -> types.Position:
    character = lines.to_client_character(text, pos.line, pos.character, encoding)
    return types.Position(line=pos.line, character=character)


def client_range(
    doc: TextDocument | None, rng: TextRange, *, text: str | None = None
) -> types.Range:
    """An engine range in the client's units; without a text (a file to create) as it is."""
    text = doc.source if text is None and doc is not None else text
    if text is None:
        return types.Range(
            start=types.Position(line=rng.start.line, character=rng.start.character),
            end=types.Position(line=rng.end.line, character=rng.end.character),
        )
    encoding = position_encoding(doc)
    return types.Range(
        start=client_position(text, rng.start, encoding),
        end=client_position(text, rng.end, encoding),
    )


def text_edit(text: str | None, e: ProposedEdit, encoding: str = "utf-16") -> types.TextEdit:
    """The TextEdit that makes a client apply `e` to `text` (positions in `encoding` units)."""
    if text is None:
        rng = client_range(None, e.range)
    else:
        rng = types.Range(
            start=client_position(text, e.range.start, encoding),
            end=client_position(text, e.range.end, encoding),
        )
    return types.TextEdit(range=rng, new_text=e.new_text)


def edit(e: ProposedEdit, uri: str, doc: TextDocument | None) -> dict[str, Any]:
    text = None if e.creates_file else document_text(doc, uri)
    r = text_edit(text, e, position_encoding(doc)).range
    return {
        "uri": uri,
        "range": {
            "start": {"line": r.start.line, "character": r.start.character},
            "end": {"line": r.end.line, "character": r.end.character},
        },
        "newText": e.new_text,
        "agent": e.agent,
        "createsFile": e.creates_file,
    }
