"""Fixtures every test gets."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the developer's own agents or talks to a model their shell configured."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    # Nor exports to their collector, or joins a trace their shell is in (docs/telemetry.md).
    for name in [
        n for n in os.environ if n.startswith("OTEL_") or n in ("TRACEPARENT", "TRACESTATE")
    ]:
        monkeypatch.delenv(name)


# Skips fail in the full suite (AGENTLS_NO_SKIPS=1, set by scripts/test.sh).
from tests.no_skips import pytest_runtest_makereport  # noqa: E402, F401
