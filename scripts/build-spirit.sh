#!/usr/bin/env bash
# Pack spirits/physarum (its spirit.toml and page) with the kernel module
# python/vudo/physarum/physarum.wasm (scripts/build-wasm.sh builds it) into the
# signed package python/vudo/physarum/physarum.spirit, which every `vudo dev`
# node installs. The author key is this checkout's build identity in
# target/spirit-author (created on first use; keep it to publish later revs
# under the same author). Packing is reproducible: same key + same files = same bytes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[build-spirit] %s\n' "$*" >&2; }
PY="$ROOT/.venv/bin/python"
AUTHOR="${VUDO_SPIRIT_AUTHOR_DIR:-$ROOT/target/spirit-author}"
WASM="$ROOT/python/vudo/physarum/physarum.wasm"
OUT="$ROOT/python/vudo/physarum/physarum.spirit"
STAGE="$ROOT/target/spirit-stage/physarum"

[[ -f "$WASM" ]] || { say "missing $WASM: run scripts/build-wasm.sh first"; exit 1; }
if [[ ! -f "$AUTHOR/node.key" ]]; then
    say "creating the build's author identity in $AUTHOR"
    PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m vudo init --data-dir "$AUTHOR" >&2
fi
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp spirits/physarum/spirit.toml spirits/physarum/index.html spirits/physarum/physarum.js spirits/physarum/physarum.css "$STAGE/"
cp "$WASM" "$STAGE/physarum.wasm"
PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m vudo spirit pack "$STAGE" -o "$OUT.tmp" --data-dir "$AUTHOR" >&2
mv -f "$OUT.tmp" "$OUT"
say "wrote $OUT"
