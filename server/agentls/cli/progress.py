"""Renders a run's event stream in the terminal: turns, tokens, tool calls, streamed text."""

from __future__ import annotations

from typing import IO

from rich.console import Console

from agentls.cli.visible import VisibleStream, markup
from agentls.core.events import EventKind, RunEvent, RunStatus, Usage
from agentls.core.pricing import format_usd
from agentls.core.tools.command import describe


def tokens(usage: Usage) -> str:
    parts = f"{usage.input_tokens:,} in"
    if usage.cached_input_tokens:
        parts += f" ({usage.cached_input_tokens:,} cached)"
    parts += f" + {usage.output_tokens:,} out"
    if usage.reasoning_tokens:
        parts += f" ({usage.reasoning_tokens:,} reasoning)"
    mark = " est." if usage.estimated else ""
    return f"{usage.total:,} tokens{mark} ({parts})"


_CLOSING_STYLE = {
    RunStatus.FINISHED: ("✓", "green"),
    RunStatus.FAILED: ("✗", "red"),
    RunStatus.CANCELLED: ("■", "yellow"),
    RunStatus.BUDGET_EXCEEDED: ("$", "red"),
    RunStatus.INTERRUPTED: ("!", "yellow"),
}


class TerminalProgress:
    """Call with each RunEvent; prefixes lines with the agent when several runs share the screen."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        stream_output: bool = True,
        prefix_agents: bool = False,
        output: IO[str] | None = None,
    ) -> None:
        # One event, one line: let the terminal wrap (rich would break a piped line at 80).
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        self.stream_output = stream_output
        self.prefix_agents = prefix_agents
        # Where streamed text goes (stdout when the text is the command's result); default:
        # with the progress lines.
        self.output = output
        self._mid_line = False
        self._answer = VisibleStream()

    @property
    def _text_stream(self) -> IO[str]:
        return self.output or self.console.file

    def _line(self, event: RunEvent, text: str) -> None:
        if self._mid_line:
            self._text_stream.write(self._answer.finish() + "\n")
            self._text_stream.flush()
            self._mid_line = False
        who = f"[bold]{markup(event.agent)}[/bold] " if self.prefix_agents else ""
        self.console.print(f"{who}{text}")

    def __call__(self, event: RunEvent) -> None:
        kind, data = event.kind, event.data
        if kind is EventKind.OUTPUT_DELTA:
            if self.stream_output:
                delta = str(data.get("delta", ""))
                self._text_stream.write(self._answer.feed(delta))
                self._text_stream.flush()
                self._mid_line = not delta.endswith("\n")
            return
        if kind is EventKind.STARTED:
            where = f" on {data['path']}" if data.get("path") else ""
            budget = f" · run budget {data['budget']:,}" if data.get("budget") else ""
            self._line(
                event,
                f"[cyan]▶[/cyan] {markup(event.agent)}{markup(where)}{budget}: "
                f"{markup(event.goal)}",
            )
        elif kind is EventKind.MODEL_CALL:
            call = Usage.model_validate(data.get("call_usage", {}))
            cost = data.get("cost_usd")
            self._line(
                event,
                f"  turn {data.get('turn')} · {markup(str(data.get('model')))} · "
                f"{tokens(call)}{f' · {format_usd(cost)}' if cost is not None else ''} · "
                f"run total {event.usage.total:,}",
            )
        elif kind is EventKind.TOOL_CALL:
            ok = "[red]✗[/red]" if data.get("is_error") else "[green]✓[/green]"
            detail = f" — {markup(event.error)}" if event.error else ""
            if phrase := describe(data):  # run_command: who allowed it, how it ended
                detail = f" ({markup(phrase)})" + detail
            self._line(
                event,
                f"  tool {markup(str(data.get('tool')))}"
                f"({markup(str(data.get('arguments', '')))}) {ok}{detail}",
            )
        elif kind in (EventKind.EDIT_PROPOSED, EventKind.EDIT_APPLIED, EventKind.EDIT_REJECTED):
            for edit in event.artifacts:
                line = edit["range"]["start"]["line"] + 1
                verb = kind.value.replace("edit_", "edit ")
                reason = f" ({markup(event.error)})" if event.error else ""
                self._line(event, f"  {verb}: {markup(edit['path'])} at line {line}{reason}")
        elif event.is_terminal:
            mark, style = _CLOSING_STYLE.get(event.status, ("•", "white"))
            seconds = (event.duration_ms or 0) / 1000
            error = f": {markup(event.error)}" if event.error else ""
            cost = ""
            if "cost_usd" in data:  # None: a model without a price (the `prices` setting)
                cost = f" · {format_usd(data['cost_usd'])}".replace("unknown", "cost unknown")
            self._line(
                event,
                f"[{style}]{mark} {event.status.value}[/{style}] in {seconds:.1f}s · "
                f"{tokens(event.usage)}{cost}{error}",
            )
