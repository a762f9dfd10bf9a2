#!/usr/bin/env bash
# Builds the wheelhouse the extension carries for one VS Code target: agentls's own wheel, every
# wheel it needs for CPython 3.11, 3.12 and 3.13 on that platform, and pip's wheel (the private
# environment is made without ensurepip, which some Linux distributions leave out). The result is
# client-vscode/bundled/wheels/ with wheelhouse.json describing it; the extension installs from it
# with `pip install --no-index --find-links`, offline.
#
# Usage: scripts/build-wheelhouse.sh [TARGET]   (default linux-x64)
#   TARGET is a `vsce package --target` name: linux-x64, linux-arm64, alpine-x64, alpine-arm64,
#   darwin-x64, darwin-arm64, win32-x64, win32-arm64. Any machine can build any target: pip
#   downloads the target's wheels, it does not build them.
#   PYTHON: the Python whose pip builds and downloads (default python3); pip's own configuration
#   (index, cache) applies.
# Idempotent: nothing is done when the wheelhouse was built for the same target from the same
# sources; when only agentls's own code changed, its wheel is rebuilt and the other wheels kept.
set -euo pipefail

TARGET=${1:-linux-x64}
PYTHON=${PYTHON:-python3}
# A relative PYTHON (.venv/bin/python) must keep working after the `cd`s below.
case "$PYTHON" in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac
PYTHON_VERSIONS=(3.11 3.12 3.13)
CLIENT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$CLIENT/.." && pwd)"
OUT="$CLIENT/bundled/wheels"
MANIFEST="$OUT/wheelhouse.json"

log() { echo "build-wheelhouse: $*" >&2; }

# pip expands manylinux2014 to the older manylinux tags itself, but not the manylinux_2_x names.
case "$TARGET" in
  linux-x64) PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 manylinux_2_24_x86_64 manylinux2014_x86_64) ;;
  linux-arm64) PLATFORMS=(manylinux_2_28_aarch64 manylinux_2_27_aarch64 manylinux_2_26_aarch64 manylinux_2_24_aarch64 manylinux2014_aarch64) ;;
  alpine-x64) PLATFORMS=(musllinux_1_2_x86_64 musllinux_1_1_x86_64) ;;
  alpine-arm64) PLATFORMS=(musllinux_1_2_aarch64 musllinux_1_1_aarch64) ;;
  darwin-x64) PLATFORMS=(macosx_11_0_x86_64) ;;
  darwin-arm64) PLATFORMS=(macosx_11_0_arm64) ;;
  win32-x64) PLATFORMS=(win_amd64) ;;
  win32-arm64) PLATFORMS=(win_arm64) ;;
  *) log "unknown target '$TARGET': use linux-x64, linux-arm64, alpine-x64, alpine-arm64, darwin-x64, darwin-arm64, win32-x64 or win32-arm64"; exit 2 ;;
esac

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { log "PYTHON=$PYTHON is older than Python 3.11; point PYTHON at a Python 3.11 or later"; exit 1; }

# What the wheelhouse is built from: the dependencies follow pyproject.toml (and this script), the
# agentls wheel follows every file that goes into it.
read -r DEPS_HASH SOURCE_HASH < <(
  cd "$ROOT" && "$PYTHON" - "$TARGET" "${PYTHON_VERSIONS[*]}" "${PLATFORMS[*]}" "$CLIENT/scripts/build-wheelhouse.sh" <<'EOF'
import hashlib, pathlib, sys

target, versions, platforms, script = sys.argv[1:5]
deps = hashlib.sha256(f"{target}|{versions}|{platforms}|".encode())
for name in ("pyproject.toml", script):
    deps.update(pathlib.Path(name).read_bytes())
source = hashlib.sha256(deps.digest())
files = [pathlib.Path("pyproject.toml"), pathlib.Path("README.md"), pathlib.Path("LICENSE")]
for folder in ("server", "agents"):
    files += [p for p in pathlib.Path(folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
              and ".egg-info" not in str(p) and p.suffix != ".pyc"]
for path in sorted(files):
    source.update(str(path).encode() + b"\0" + path.read_bytes())
print(deps.hexdigest()[:16], source.hexdigest()[:16])
EOF
)

manifest_field() {
  [ -f "$MANIFEST" ] || return 0
  "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$MANIFEST" "$1" 2>/dev/null || true
}

if [ "$(manifest_field target)" = "$TARGET" ] && [ "$(manifest_field dependenciesHash)" = "$DEPS_HASH" ] \
  && [ "$(manifest_field sourceHash)" = "$SOURCE_HASH" ]; then
  log "up to date for $TARGET ($OUT)"
  exit 0
fi

WORK="$(mktemp -d "$CLIENT/bundled.tmp-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/wheels" "$WORK/project"

log "building the agentls wheel"
# From a clean copy: setuptools' build/ in the checkout could carry files deleted since into the wheel.
mkdir -p "$WORK/source"
tar -C "$ROOT" -c --exclude='*.egg-info' --exclude=__pycache__ --exclude='*.pyc' pyproject.toml README.md LICENSE server agents \
  | tar -C "$WORK/source" -x
"$PYTHON" -m pip wheel --quiet --no-deps --disable-pip-version-check -w "$WORK/project" "$WORK/source"
AGENTLS_WHEEL="$(cd "$WORK/project" && ls agentls-*.whl)"
cp "$WORK/project/$AGENTLS_WHEEL" "$WORK/wheels/"

if [ "$(manifest_field target)" = "$TARGET" ] && [ "$(manifest_field dependenciesHash)" = "$DEPS_HASH" ]; then
  log "dependencies unchanged: keeping their wheels"
  find "$OUT" -maxdepth 1 -name '*.whl' ! -name 'agentls-*.whl' -exec cp {} "$WORK/wheels/" \;
else
  for version in "${PYTHON_VERSIONS[@]}"; do
    log "downloading the wheels for CPython $version on $TARGET"
    platform_args=()
    for platform in "${PLATFORMS[@]}"; do platform_args+=(--platform "$platform"); done
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
      --implementation cp --python-version "$version" --abi "cp${version/./}" --abi abi3 --abi none \
      "${platform_args[@]}" -d "$WORK/wheels" "$WORK/project/$AGENTLS_WHEEL" pip
  done
fi

"$PYTHON" - "$WORK/wheels" "$CLIENT/package.json" "$TARGET" "${PYTHON_VERSIONS[*]}" "$DEPS_HASH" "$SOURCE_HASH" "$AGENTLS_WHEEL" <<'EOF'
import hashlib, json, pathlib, sys

wheels, package_json, target, versions, deps_hash, source_hash, agentls_wheel = sys.argv[1:8]
folder = pathlib.Path(wheels)
names = sorted(p.name for p in folder.glob("*.whl"))
agentls_version = agentls_wheel.split("-")[1]
extension_version = json.loads(pathlib.Path(package_json).read_text())["version"]
if agentls_version != extension_version:
    sys.exit(f"build-wheelhouse: agentls {agentls_version} (pyproject.toml) is not the extension's version "
             f"{extension_version} (client-vscode/package.json): the extension installs agentls=={extension_version}; "
             "give both the same version")
pips = [n for n in names if n.startswith("pip-")]
if not pips:
    sys.exit("build-wheelhouse: no pip wheel was downloaded")
bundle = hashlib.sha256()
for name in names:
    bundle.update(name.encode() + b"\0" + hashlib.sha256((folder / name).read_bytes()).digest())
manifest = {
    "target": target,
    "pythonVersions": versions.split(),
    "agentlsVersion": agentls_version,
    "agentlsWheel": agentls_wheel,
    "pipWheel": pips[-1],
    "bundle": bundle.hexdigest()[:16],
    "dependenciesHash": deps_hash,
    "sourceHash": source_hash,
    "wheels": names,
}
(folder / "wheelhouse.json").write_text(json.dumps(manifest, indent=2) + "\n")
print(f"build-wheelhouse: {len(names)} wheels for {target}, CPython {', '.join(versions.split())}", file=sys.stderr)
EOF

rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
mv "$WORK/wheels" "$OUT"
log "done: $OUT"
