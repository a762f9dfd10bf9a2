"""Progress a tool reports mid-call becomes bounded, redacted live events of the calling run."""

from __future__ import annotations

import asyncio

from agentls.core.definitions import AgentDefinition, Mode
from agentls.core.events import EventKind, RunEvent
from agentls.core.run_state import RunState
from agentls.core.tool_progress import MAX_PROGRESS_CHARS, PROGRESS_BURST, ProgressForwarder

SECRET = "AKIA" + "Q7X2M4B9K1Z8R5T3"


def forwarder(seen: list[RunEvent]) -> ProgressForwarder:
    definition = AgentDefinition(
        name="orchestrator", description="d", instructions="i", mode=Mode.TOOLS
    )
    run = RunState("run-1", definition, "goal", None, None, 0, None, turn=2)
    return ProgressForwarder(run, "mcp__agentls__delegate", seen.append)


async def test_a_flood_of_reports_is_cut_to_a_burst_then_the_latest() -> None:
    seen: list[RunEvent] = []
    report = forwarder(seen)
    for i in range(1_000):
        report(f"step {i}")
    assert [e.data["arguments"] for e in seen] == [f"→ step {i}" for i in range(PROGRESS_BURST)]
    await asyncio.sleep(1.0)  # one more fits after 1/rate s: the newest, not the next in line
    assert seen[-1].data["arguments"] == "→ step 999"
    assert len(seen) == PROGRESS_BURST + 1
    report.close()


async def test_a_report_is_one_short_redacted_line_live_only() -> None:
    seen: list[RunEvent] = []
    report = forwarder(seen)
    report(f"reviewer: reading\n with key {SECRET}\n" + "x" * 100_000)
    (event,) = seen
    line = event.data["arguments"]
    assert SECRET not in line and "[REDACTED]" in line
    assert "\n" not in line and len(line) <= MAX_PROGRESS_CHARS + 2
    assert event.kind is EventKind.TOOL_STARTED  # transient: the audit trail never stores it
    assert event.data == {
        "turn": 2,
        "tool": "mcp__agentls__delegate",
        "arguments": line,
        "progress": True,
    }


async def test_nothing_is_reported_after_the_call_ends() -> None:
    seen: list[RunEvent] = []
    report = forwarder(seen)
    for i in range(PROGRESS_BURST + 1):
        report(f"step {i}")
    report.close()
    report("late")
    await asyncio.sleep(1.0)
    assert len(seen) == PROGRESS_BURST
