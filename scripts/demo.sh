#!/usr/bin/env bash
# Sets up agentls and delegates examples/sample.py to the `review` agent on the embedded model.
# No key, no network: the model runs in-process. Pass other `agentls run` arguments to change it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- review --goal "Review this module for bugs" --file examples/sample.py --lines 10-25
fi
# The demo state (ledger, audit trail) lives in examples/.agentls/.
exec env -u OPENAI_API_KEY -u OPENAI_BASE_URL .venv/bin/agentls --workspace examples run "$@"
