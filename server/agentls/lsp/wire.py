"""Engine values in their wire form (camelCase JSON) and LSP positions in engine form.

The engine counts characters in code points; LSP clients usually count UTF-16 units. The
document's position codec converts both ways, so a line with emoji still edits the right text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import from_fs_path
from pygls.workspace import TextDocument

from agentls.core.events import RunEvent, Usage
from agentls.core.target import Position, ProposedEdit, TextRange


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
    elif e.kind.value == "tool_call":
        head += f" {d.get('tool')}({d.get('arguments', '')})" + (
            " error" if d.get("is_error") else ""
        )
    elif e.kind.value == "started":
        head += f" goal={e.goal!r}" + (f" path={d['path']}" if d.get("path") else "")
    elif e.is_terminal:
        head += f" tokens={e.usage.total} duration={(e.duration_ms or 0) / 1000:.1f}s"
    if e.error:
        head += f" error={e.error}"
    return f"{head} run={e.run_id[:8]}"


def engine_range(doc: TextDocument, rng: types.Range) -> TextRange:
    return TextRange(start=_engine_position(doc, rng.start), end=_engine_position(doc, rng.end))


def _engine_position(doc: TextDocument, pos: types.Position) -> Position:
    lines = doc.lines
    if pos.line >= len(lines):
        # The line after the last is the end of the document (a selection of whole lines ends
        # there); pygls would clamp it into the last line and leave the final newline out.
        if not lines or lines[-1].endswith(("\n", "\r")):
            return Position(line=len(lines), character=0)
        return Position(line=len(lines) - 1, character=len(lines[-1]))
    body = lines[pos.line].rstrip("\r\n")
    if pos.character >= doc.position_codec.client_num_units(body):
        # Past the end of a line means its end (pygls would stop one character short of it).
        return Position(line=pos.line, character=len(body))
    server = doc.position_codec.position_from_client_units(lines, pos)
    return Position(line=server.line, character=server.character)


def client_range(doc: TextDocument | None, rng: TextRange) -> types.Range:
    raw = types.Range(
        start=types.Position(line=rng.start.line, character=rng.start.character),
        end=types.Position(line=rng.end.line, character=rng.end.character),
    )
    if doc is None:
        return raw
    return doc.position_codec.range_to_client_units(doc.lines, raw)


def edit(e: ProposedEdit, uri: str, doc: TextDocument | None) -> dict[str, Any]:
    r = client_range(doc, e.range)
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
