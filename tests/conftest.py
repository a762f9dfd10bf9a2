"""Fixtures every test gets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.rig.postgres import PostgresCluster, PostgresMissing, server_bin

# Set by a test (or by `agentls --database-url` run in-process): always put back as it was.
_RESTORED = ("AGENTLS_DATABASE_URL", "AGENTLS_USER", "PGPASSWORD")


@pytest.fixture(autouse=True)
def isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the developer's own agents or talks to a model their shell configured."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    for name in _RESTORED:
        monkeypatch.setenv(name, "")  # remembers the value before, so teardown restores it
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the whole session (scripts/setup-postgres.sh installs
    the server; without it the tests that need it skip, which the full suite counts as failures)."""
    try:
        server_bin()
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    with PostgresCluster.start() as pg:
        yield pg


# Skips fail in the full suite (AGENTLS_NO_SKIPS=1, set by scripts/test.sh).
from tests.no_skips import pytest_runtest_makereport  # noqa: E402, F401
