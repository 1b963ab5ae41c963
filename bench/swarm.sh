#!/usr/bin/env bash
# Swarm distribution: 1 origin + SEEDERS (default 10) `hlswarm seed` processes on loopback,
# through the libp2p swarm and as plain HTTP mirrors, in one run. Writes the "swarm" section of
# docs/BENCHMARKS.md.
#
#   bench/swarm.sh [SECONDS]        (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SECS=${1:-60}
cargo build --release -q -p node --bin hlswarm
python3 bench/swarm.py --bin "${CARGO_TARGET_DIR:-target}/release/hlswarm" --seconds "$SECS" --seeders "${SEEDERS:-10}" \
    --work "$WORK" ${BENCH_RESULTS:+--raw "$BENCH_RESULTS/swarm.json"} >"$WORK/section.md"
cat "$WORK/section.md"
python3 bench/section.py docs/BENCHMARKS.md swarm <"$WORK/section.md"
