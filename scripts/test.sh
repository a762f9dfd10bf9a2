#!/usr/bin/env bash
# Sets up everything the tests need and runs every test: lint and types, the VS Code client (unit,
# package, end to end in code-server), then the Python suite (engine, budget/audit, LSP end to end,
# the real embedded model, Neovim). In that full run a skipped test fails (AGENTLS_NO_SKIPS=1).
# Pass pytest arguments to run a subset of the Python suite only (skips allowed there).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/setup-test-node.sh
scripts/setup-postgres.sh

if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi

echo "== lint and types (Python)"
.venv/bin/ruff check server tests
.venv/bin/ruff format --check server tests
.venv/bin/mypy

echo "== VS Code client"
scripts/setup-vscode-e2e.sh
# The wheels the extension carries (agentls and its dependencies for CPython 3.11-3.13): downloaded
# once, then rebuilt only when pyproject.toml or agentls's sources change.
PYTHON=.venv/bin/python client-vscode/scripts/build-wheelhouse.sh linux-x64
(
  cd client-vscode
  npm ci --no-audit --no-fund --loglevel=error
  npm run typecheck
  npm run lint
  npm run test:unit
  AGENTLS_TEST_PYTHON="$PWD/../.venv/bin/python" npm run test:integration
  PYTHON="$PWD/../.venv/bin/python" AGENTLS_PYTHON="$PWD/../.venv/bin/python" npm run test:e2e
)

echo "== Python test suite (a skip is a failure here: everything a test needs is installed above)"
AGENTLS_NO_SKIPS=1 .venv/bin/python -m pytest -q -rs -p no:cacheprovider
