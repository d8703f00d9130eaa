#!/usr/bin/env bash
# Install everything VUDO needs and build it, on a fresh Debian 12 (or again,
# cheaply, on a machine that already has it). Used by scripts/dev and
# scripts/test; safe to run by hand. Progress goes to stderr.
#
#   system packages (apt, when run as root and something is missing)
#   Rust: Debian's rustc-web/cargo-web 1.96 for the native extension and wasm32
#   Python: .venv with the pinned requirements.lock, then the extension (maturin)
#   target/release/vudo-outsider: a plain chitchat participant the adversarial tests attack with
#   wasm: python/vudo/physarum/physarum.wasm (scripts/build-wasm.sh)
#   spirit: python/vudo/physarum/physarum.spirit, signed (scripts/build-spirit.sh)
#   web: npm ci + esbuild bundle into python/vudo/web/static
#   optional, VUDO_BENCH_EXTRAS=1: the benchmark anchors (Debian SuiteSparse and
#   OpenBLAS, then pyamg + scikit-sparse from requirements-bench.lock)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[setup] %s\n' "$*" >&2; }

APT_PACKAGES=(
    ca-certificates git build-essential pkg-config
    python3 python3-venv python3-dev
    rustc-web cargo-web rust-web-src lld-19
    chromium
)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        say "missing Debian packages: ${missing[*]}"
        say "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# One Rust toolchain for everything: Debian's rustc-web (it also builds wasm32).
TOOLBIN="$ROOT/target/toolchain-bin"
mkdir -p "$TOOLBIN"
for tool in cargo rustc rustdoc; do ln -sf "/usr/bin/$tool" "$TOOLBIN/$tool"; done
export PATH="$TOOLBIN:$PATH"
unset RUSTUP_TOOLCHAIN
say "rust: $(rustc --version)"

PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    say "creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
lock_hash="$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [[ "$(cat .venv/.lock-hash 2>/dev/null)" != "$lock_hash" ]]; then
    say "installing Python packages from requirements.lock"
    .venv/bin/python -m pip install -q --upgrade "pip>=24" "uv==0.13.9"
    .venv/bin/uv pip install -q --python .venv/bin/python -r requirements.lock
    echo "$lock_hash" > .venv/.lock-hash
fi

if [[ "${VUDO_BENCH_EXTRAS:-0}" == "1" ]]; then
    # Only bench/physarum_bench.py needs these; nothing else imports them.
    bench_pkgs=(libsuitesparse-dev libopenblas0-serial)
    bench_missing=()
    for pkg in "${bench_pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || bench_missing+=("$pkg")
    done
    if ((${#bench_missing[@]})); then
        if [[ $(id -u) -ne 0 ]]; then
            say "benchmark extras need: sudo apt-get install -y ${bench_missing[*]}"
            exit 1
        fi
        say "installing Debian packages for the benchmark anchors: ${bench_missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${bench_missing[@]}" >&2
    fi
    say "installing the benchmark anchors (requirements-bench.lock)"
    .venv/bin/uv pip install -q --python .venv/bin/python -r requirements-bench.lock
fi

say "building the Rust extension vudo._core (release)"
VIRTUAL_ENV="$ROOT/.venv" .venv/bin/maturin develop --release --quiet >&2

say "building vudo-outsider (plain chitchat participant for adversarial tests)"
cargo build --release --quiet -p vudo-outsider >&2

say "building physarum.wasm"
scripts/build-wasm.sh

say "packing physarum.spirit (signed, tier free)"
scripts/build-spirit.sh

say "building the web UI"
web_hash="$(sha256sum web/package-lock.json | cut -c1-16)"
if [[ ! -d web/node_modules || "$(cat web/node_modules/.lock-hash 2>/dev/null)" != "$web_hash" ]]; then
    (cd web && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$web_hash" > web/node_modules/.lock-hash
fi
# The dashboard's API types come from the API's own OpenAPI document.
.venv/bin/python -m vudo.api.openapi > web/openapi.json
(cd web && npm run --silent gen:api >&2 && npm run --silent build >&2)
say "ready"
