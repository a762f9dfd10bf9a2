#!/usr/bin/env bash
# Installs the real peers the Python tests talk to (tests/node/package.json): the reference MCP
# servers (server-everything, server-filesystem), an MCP client the project did not write
# (inspector-cli) and the ACP TypeScript SDK. Idempotent: skipped when the lock file is unchanged.
set -euo pipefail
cd "$(dirname "$0")/../tests/node"
stamp=node_modules/.agentls-setup
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "agentls: installing the test peers (npm) into tests/node/node_modules" >&2
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
