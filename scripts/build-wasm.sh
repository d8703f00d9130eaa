#!/usr/bin/env bash
# Build the Physarum kernel (crates/vudo-physarum) into ONE wasm32 module and copy
# it to python/vudo/physarum/physarum.wasm, where the Python package (wasmtime) and
# the node's web server (/physarum.wasm) pick it up.
#
# Works on Debian 12 with:  apt-get install -y rustc-web cargo-web rust-web-src lld-19
# (rustup's `rustup target add wasm32-unknown-unknown` cannot download here). We use
# Debian's compiler, rebuild std for the target (-Zbuild-std, enabled on a stable
# toolchain by RUSTC_BOOTSTRAP=1) and link with wasm-ld-19. If a rustup toolchain
# with the wasm32 target installed is available, set PX_USE_RUSTUP=1 to use it.
# Idempotent: cargo rebuilds only what changed; the copy is overwritten.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET=wasm32-unknown-unknown
TARGET_DIR="$ROOT/target/wasm"
OUT="$ROOT/python/vudo/physarum/physarum.wasm"
say() { printf '[build-wasm] %s\n' "$*" >&2; }

if [[ "${PX_USE_RUSTUP:-0}" == "1" ]]; then
    say "using rustup toolchain with the installed $TARGET target"
    CARGO_CMD=(cargo build)
else
    for tool in /usr/bin/cargo /usr/bin/rustc; do
        [[ -x "$tool" ]] || { say "missing $tool: apt-get install -y rustc-web cargo-web rust-web-src lld-19"; exit 1; }
    done
    LINKER="$(command -v wasm-ld-19 || command -v wasm-ld || true)"
    [[ -n "$LINKER" ]] || { say "missing wasm-ld-19: apt-get install -y lld-19"; exit 1; }
    SYSROOT="$(/usr/bin/rustc --print sysroot)"
    [[ -d "$SYSROOT/lib/rustlib/src/rust/library" ]] || {
        say "missing std sources under $SYSROOT/lib/rustlib/src: apt-get install -y rust-web-src"; exit 1; }
    export RUSTC=/usr/bin/rustc
    export RUSTC_BOOTSTRAP=1
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$LINKER"
    # Keep the rustup toolchain out of the way (rustup's cargo proxies come first in PATH).
    export PATH="/usr/bin:$PATH"
    unset RUSTUP_TOOLCHAIN CARGO_BUILD_RUSTC_WRAPPER RUSTC_WRAPPER
    say "compiler: $(/usr/bin/rustc --version), linker: $LINKER"
    CARGO_CMD=(/usr/bin/cargo build -Zbuild-std=std,panic_abort)
fi

# 128-bit SIMD (wasm simd128, supported by wasmtime and every current browser):
# the factorization's element-wise loops vectorise. No relaxed-simd, so no
# fused multiply-add: results stay bit-identical to the native build.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128"
say "building vudo-physarum for $TARGET (profile wasm, simd128, target dir $TARGET_DIR)"
set -x
"${CARGO_CMD[@]}" -p vudo-physarum --lib --profile wasm --target "$TARGET" --target-dir "$TARGET_DIR"
{ set +x; } 2>/dev/null

BUILT="$TARGET_DIR/$TARGET/wasm/vudo_physarum.wasm"
[[ -f "$BUILT" ]] || { say "build finished but $BUILT is missing"; exit 1; }
mkdir -p "$(dirname "$OUT")"
cp -f "$BUILT" "$OUT"
say "wrote $OUT ($(stat -c %s "$OUT") bytes)"
