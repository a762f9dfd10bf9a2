"""The full suite cannot hide a missing dependency: with AGENTLS_NO_SKIPS=1 (scripts/test.sh with no
arguments) a skipped test fails and says why; a subset run may still skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
SKIPPING = """
import pytest

def test_needs_a_missing_tool():
    pytest.skip("no frobnicator installed")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False

def test_fine():
    pass
"""


def run_pytest(tmp_path: Path, no_skips: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SKIPPING, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "AGENTLS_NO_SKIPS"}
    if no_skips is not None:
        env["AGENTLS_NO_SKIPS"] = no_skips
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "tests.no_skips",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_sample.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_fails_the_full_suite_and_names_the_reason(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "1")

    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed, 1 xfailed" in result.stdout
    assert "no frobnicator installed" in result.stdout
    assert "the full suite allows no skips" in result.stdout


@pytest.mark.parametrize("no_skips", [None, "0"])
def test_a_subset_run_may_still_skip(tmp_path: Path, no_skips: str | None) -> None:
    result = run_pytest(tmp_path, no_skips)

    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped, 1 xfailed" in result.stdout


def test_the_readme_test_command_turns_skips_into_failures() -> None:
    script = (REPO / "scripts" / "test.sh").read_text(encoding="utf-8")
    full_run = script.split("== Python test suite", 1)[1]
    assert "AGENTLS_NO_SKIPS=1" in full_run
    assert "-rs" in full_run
