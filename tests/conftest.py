"""Fixtures every test gets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.rig.postgres import (
    PostgresCluster,
    PostgresMissing,
    drop_database,
    server_bin,
    team_database,
)
from tests.rig.scripted_openai import ScriptedOpenAI

# Set by a test (or by `agentls --database-url` run in-process): always put back as it was.
_RESTORED = ("AGENTLS_DATABASE_URL", "AGENTLS_USER", "PGPASSWORD")


@pytest.fixture(autouse=True)
def isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the developer's own agents or talks to a model their shell configured."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    # Their state folder either: it follows HOME (~/.local/state) when this is unset.
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name in _RESTORED:
        monkeypatch.setenv(name, "")  # remembers the value before, so teardown restores it
        monkeypatch.delenv(name)
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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the whole session (scripts/setup-postgres.sh installs
    the server; without it the tests that need it skip, which the full suite counts as failures)."""
    try:
        server_bin()
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    # In memory where there is /dev/shm: the suite's many small databases need no disk syncs.
    shm = Path("/dev/shm")
    with PostgresCluster.start(shm if shm.is_dir() else None) as pg:
        yield pg


@pytest.fixture
def team_db(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh team database (schema and roles created); the owner's URL."""
    url = team_database(postgres_cluster)
    yield url
    if postgres_cluster.running:
        drop_database(postgres_cluster, url)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """Each ledger and audit store test runs on both backends: None for the workspace's SQLite
    files, else the team database's URL, which `AGENTLS_DATABASE_URL` also names (so child
    processes and `for_workspace` use it)."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("team_db")
    monkeypatch.setenv("AGENTLS_DATABASE_URL", url)
    return url


# Modules whose tests start processes (servers, editors, child agentls, PostgreSQL, packaging)
# or run the embedded model: `slow`, so `scripts/test.sh -m "not slow"` is a quick inner loop.
SLOW_MODULES = frozenset(
    {
        "test_acp",
        "test_acp_costs",
        "test_acp_panels",
        "test_acp_sdk",
        "test_acp_trust",
        "test_cli_mcp",
        "test_cli_security",
        "test_embedded_model",
        "test_fuzz_cli",
        "test_fuzz_definitions",
        "test_fuzz_settings",
        "test_mcp_client",
        "test_mcp_costs",
        "test_mcp_hosts",
        "test_mcp_http_guard",
        "test_mcp_http_sessions",
        "test_mcp_server",
        "test_orchestration",
        "test_packaging",
        "test_soak_invariants",
        "test_team_faults",
        "test_team_machines",
        "test_telemetry_clients",
        "test_telemetry_export",
        "test_terminal_escapes",
        "test_trust_children",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        in_editor = "editors" in item.path.parts or "lsp" in item.path.parts
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgres"
        needs_postgres = "team_db" in getattr(item, "fixturenames", ())
        if (
            module in SLOW_MODULES
            or in_editor
            or on_postgres
            or needs_postgres
            or item.get_closest_marker("model")
        ):
            item.add_marker(pytest.mark.slow)


# Skips fail in the full suite (AGENTLS_NO_SKIPS=1, set by scripts/test.sh).
from tests.no_skips import pytest_runtest_makereport  # noqa: E402, F401
