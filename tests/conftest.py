"""Fixtures every test gets."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.rig.scripted_openai import ScriptedOpenAI


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


@pytest.fixture
def scripted_model() -> Iterator[ScriptedOpenAI]:
    """The scripted OpenAI-compatible server on 127.0.0.1 (tests/rig/scripted_openai.py): replies
    are enqueued by the test, requests are recorded. It stands for the network, not for our code."""
    with ScriptedOpenAI() as server:
        yield server


# The names the suites use for it; a module that needs a variant (latency, a responder, an API
# key in the environment) defines its own fixture of that name.
@pytest.fixture
def server(scripted_model: ScriptedOpenAI) -> ScriptedOpenAI:
    return scripted_model


@pytest.fixture
def model(scripted_model: ScriptedOpenAI) -> ScriptedOpenAI:
    return scripted_model


@pytest.fixture
def scripted(scripted_model: ScriptedOpenAI) -> ScriptedOpenAI:
    return scripted_model


# Skips fail in the full suite (AGENTLS_NO_SKIPS=1, set by scripts/test.sh).
from tests.no_skips import pytest_runtest_makereport  # noqa: E402, F401
