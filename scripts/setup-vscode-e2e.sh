#!/usr/bin/env bash
# Installs what the VS Code end-to-end test needs: Debian chromium, ripgrep and build tools, and
# code-server 4.100.3 (VS Code 1.100.3, the last line that runs on Node 20) into
# client-vscode/e2e/.code-server/. Idempotent: each step is skipped when already done.
set -euo pipefail

CODE_SERVER_VERSION=4.100.3
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/client-vscode/e2e/.code-server"
MARKER="$PREFIX/.installed-$CODE_SERVER_VERSION"

log() { echo "setup-vscode-e2e: $*" >&2; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v rg >/dev/null 2>&1 || missing+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
dpkg -s build-essential >/dev/null 2>&1 || missing+=(build-essential)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -f "$MARKER" ] && [ -x "$PREFIX/node_modules/.bin/code-server" ]; then
  log "code-server $CODE_SERVER_VERSION already installed in $PREFIX"
  exit 0
fi

log "installing code-server $CODE_SERVER_VERSION into $PREFIX"
# npx (node-pty's post-install runs `npx node-gyp`) must not stop to ask.
export npm_config_yes=true
mkdir -p "$PREFIX"
cd "$PREFIX"
[ -f package.json ] || echo '{"name": "agentls-e2e-code-server", "private": true}' > package.json
# A plain install fails: ripgrep's postinstall downloads a binary from the internet.
npm install --no-audit --no-fund --ignore-scripts "code-server@$CODE_SERVER_VERSION"
npm rebuild argon2

cd "$PREFIX/node_modules/code-server/lib/vscode"
npm install --no-audit --no-fund --omit=dev --ignore-scripts
mkdir -p node_modules/@vscode/ripgrep/bin
ln -sf /usr/bin/rg node_modules/@vscode/ripgrep/bin/rg
npm rebuild
ln -sfn node_modules node_modules.asar
(cd bin/remote-cli && ln -sf code-linux.sh code-server)
(cd bin/helpers && ln -sf browser-linux.sh browser.sh)
(cd extensions && npm install --no-audit --no-fund --omit=dev)

touch "$MARKER"
log "done: $PREFIX/node_modules/.bin/code-server"
