#!/usr/bin/env bash
# Set up what the tests need (apt packages only when missing, the web client's npm packages),
# then run hygiene checks and every test: Rust (unit, property, end-to-end with ffmpeg and
# headless Chromium), the web client's verifier against the protocol vectors, and a bounded
# fuzz smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== web client tests (npm test)"
(cd web-client && npm test --silent)
echo "== cargo test"
cargo test --workspace
echo "== fuzz smoke (every cargo-fuzz target for a bounded time)"
FUZZ_SECONDS=${FUZZ_SECONDS:-10} scripts/fuzz-smoke.sh
