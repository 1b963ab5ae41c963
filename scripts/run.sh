#!/usr/bin/env bash
# Set up and run an hlswarm node with its defaults: RTMP ingest on :1935, HTTP origin with the
# watch page and dashboard on :8080, signed HLS kept in ./hlswarm-data. It prints the OBS server
# URL, the stream key and the watch link. Ctrl-C stops it (the current segment is signed first).
#   extra arguments go to `hlswarm run` (see `hlswarm run --help`);
#   `scripts/run.sh seed SOURCE...` runs a seeder instead (see `hlswarm seed --help`)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin hlswarm
case "${1:-}" in
    seed | tracker | keygen | verify | sign) exec target/release/hlswarm "$@" ;;
esac
exec target/release/hlswarm run "$@"
