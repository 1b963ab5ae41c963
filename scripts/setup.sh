#!/usr/bin/env bash
# Install what building (and, with --test, testing) hlswarm needs on a fresh Debian machine,
# only what is missing. Then build the web client the node embeds.
#   scripts/setup.sh          build needs: C compiler, Node.js + npm (web client)
#   scripts/setup.sh --test   also ffmpeg/ffprobe, python3 and Chromium for the tests
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to install: $*" >&2; exit 1
    fi
}

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "${1:-}" = "--test" ]; then
    command -v ffmpeg >/dev/null || missing+=(ffmpeg)
    command -v ffprobe >/dev/null || missing+=(ffmpeg)
    command -v python3 >/dev/null || missing+=(python3)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v c++ >/dev/null || missing+=(g++)   # libFuzzer, built by cargo-fuzz
    command -v ip >/dev/null || missing+=(iproute2)   # network namespaces (partition, relay)
    command -v prlimit >/dev/null || missing+=(util-linux)   # load tests raise their fd limit
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "cargo (Rust 1.95 or newer) is required: install it with rustup" >&2
    exit 1
fi
if command -v rustup >/dev/null; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# The web client: pinned by web-client/package-lock.json; built into web-client/dist, which
# the hlswarm binary embeds at compile time. Nothing prebuilt is committed.
echo "== web client (npm ci, npm run build)"
(
    cd web-client
    npm ci --no-audit --no-fund --loglevel=error
    npm run --silent build
)

# The MoQ tests and bench (node/tests/moq.rs, bench/moq.sh) run a real moq-relay. Built from
# source only when missing (about 11 minutes on 2 cores); `--locked` fails for this version (its
# lockfile names a crate version the registry lacks), so it is not used.
if [ "${1:-}" = "--test" ]; then
    cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
    if ! command -v moq-relay >/dev/null && [ ! -x "$cargo_bin/moq-relay" ]; then
        echo "== moq-relay 0.17.10 (cargo install, once)"
        cargo install moq-relay --version 0.17.10 --quiet
    fi
fi

# The tracker interop check (node/tests/tracker.rs): the npm bittorrent-tracker client and
# node-datachannel, pinned by tracker/interop/package-lock.json.
if [ "${1:-}" = "--test" ]; then
    echo "== tracker interop clients (npm ci)"
    (
        cd tracker/interop
        npm ci --no-audit --no-fund --loglevel=error
    )
fi
