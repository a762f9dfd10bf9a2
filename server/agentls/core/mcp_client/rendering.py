"""An MCP tool's result as the text the model reads: text blocks, then structured content once,
media and binary resources named rather than shown, bounded like every tool result."""

from __future__ import annotations

import json
from typing import Any

from agentls.core.tools.base import MAX_RESULT_CHARS, ToolResult, truncate


def render_result(result: Any, limit: int = MAX_RESULT_CHARS) -> ToolResult:
    """A CallToolResult as the text the model reads: text blocks, then structured content."""
    parts: list[str] = []
    size = 0
    for block in result.content or []:
        if size > limit:
            break  # the rest would be cut anyway; do not build a huge string first
        text = _block_text(block)
        parts.append(text)
        size += len(text)
    structured = result.structured_content
    # Servers often send the same data as text too (the SDK wraps a plain return value in
    # {"result": ...}): send it once.
    repeated = structured is not None and bool(parts) and _repeats(structured, "\n".join(parts))
    if structured is not None and size <= limit and not repeated:
        dumped = json.dumps(structured, ensure_ascii=False, default=str)
        parts.append(f"structured content: {dumped}")
    text = "\n".join(parts) if parts else "(the tool returned no content)"
    is_error = bool(result.is_error)
    if is_error:
        text = f"error: {text}"
    return ToolResult(content=truncate(text, limit), is_error=is_error)


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind} {block.mime_type}, {len(block.data) * 3 // 4} bytes, not shown]"
    if kind == "resource_link":
        return f"[resource {block.uri}" + (f": {block.name}]" if block.name else "]")
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if text is not None:
            return f"[resource {resource.uri}]\n{text}"
        return f"[resource {resource.uri}, binary, not shown]"
    return f"[{kind} content, not shown]"


def _repeats(structured: Any, text: str) -> bool:
    """True when the text already holds the structured content: as JSON, or every value in it."""
    if text.lstrip().startswith(("{", "[")):
        try:
            if json.loads(text) == structured:
                return True
        except ValueError:
            pass
    leaves: list[Any] = []
    stack = [structured]
    while stack and len(leaves) <= 1_000:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None:
            leaves.append(item)
    if not leaves or len(leaves) > 1_000:
        return False
    return all(
        (leaf if isinstance(leaf, str) else json.dumps(leaf)).strip() in text for leaf in leaves
    )
