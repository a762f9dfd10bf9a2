#!/usr/bin/env bash
# Packages the extension as ruff-vscode does, one .vsix per platform:
#   scripts/package.sh linux-x64   agentls-linux-x64.vsix with the wheelhouse for that VS Code target
#                                  (built or reused by build-wheelhouse.sh; any target it knows)
#   scripts/package.sh plain       agentls.vsix without wheels: on first use it installs agentls of the
#                                  extension's version from the user's package index
# PYTHON: passed on to build-wheelhouse.sh.
set -euo pipefail
CLIENT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$CLIENT"
TARGET=${1:?usage: scripts/package.sh TARGET|plain}
VSCE="$CLIENT/node_modules/.bin/vsce"

if [ "$TARGET" = plain ]; then
  # vsce applies every `!` line whatever its order: drop the wheelhouse's instead of adding an exclusion.
  ignore="$(mktemp)"
  trap 'rm -f "$ignore"' EXIT
  grep -v '^!bundled/' .vscodeignore > "$ignore"
  "$VSCE" package --no-dependencies --allow-missing-repository --ignoreFile "$ignore" -o agentls.vsix
else
  scripts/build-wheelhouse.sh "$TARGET"
  "$VSCE" package --target "$TARGET" --no-dependencies --allow-missing-repository -o "agentls-$TARGET.vsix"
fi
