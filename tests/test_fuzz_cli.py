"""Random command lines for run, budget and audit: a result or a one-line error (exit 2), never a
traceback."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentls.cli import main

OPTIONS = {
    "run": [
        "explain",
        "review",
        "--goal",
        "--file",
        "--lines",
        "--budget",
        "--apply",
        "--json",
        "--model",
        "--base-url",
        "--max-output-tokens",
        "calc.py",
        "missing.py",
    ],
    "budget": ["set", "reset", "--agent", "--json", "--allow-unknown-agent", "explain", "none"],
    "audit": ["--run", "--agent", "--since", "--limit", "--json"],
}
values = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "1e23",
            "0001-01-01",
            "9999-12-31T23:59:59",
            "1-2",
            "5-",
            "-",
            "1.5M",
            "0",
            "-1",
            "2h",
            "99999999999d",
            "nan",
            "",
            " ",
            "\x00",
        ]
    ),
)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(OPTIONS)))
    words = draw(st.lists(st.sampled_from(OPTIONS[command]) | values, max_size=8))
    return [command, *words]


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command line that happens to be a valid run meets a closed port, not a model."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines())
def test_random_command_lines_end_in_a_result_or_a_one_line_error(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        (workspace / "calc.py").write_text("def add(a, b):\n    return a + b\n")
        err, out = io.StringIO(), io.StringIO()
        with (
            contextlib.redirect_stderr(err),
            contextlib.redirect_stdout(out),
            contextlib.chdir(workspace),
        ):
            try:
                status = main(["--workspace", str(workspace), *argv])
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 2
    text = err.getvalue()
    assert "Traceback" not in text
    assert status in (0, 1, 2), text
    if status == 2 and text:
        assert "error" in text.strip().split("\n")[-1]
