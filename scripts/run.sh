#!/usr/bin/env bash
# Set up and run an hlswarm node with its defaults: RTMP ingest on :1935, signed HLS written to
# ./hlswarm-data/streams/<stream_id>/. It prints the OBS server URL and stream key. Ctrl-C stops it.
#   extra arguments go to `hlswarm run` (see `hlswarm run --help`)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin hlswarm
exec target/release/hlswarm run "$@"
