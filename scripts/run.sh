#!/usr/bin/env bash
# Set up and run a local hlswarm demo with no external service: build the node, make a stream key,
# package a test pattern with ffmpeg and sign it live. Stop with Ctrl-C.
#   DATA=dir  data directory (default ./hlswarm-data)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin hlswarm
bin=target/release/hlswarm
data=${DATA:-hlswarm-data}
packager=$data/packager
mkdir -p "$packager"

"$bin" --data-dir "$data" sign --watch "$packager" --title "hlswarm demo" &
signer=$!
ffmpeg -v error -nostdin -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -c:v libx264 -preset veryfast -g 60 -c:a aac -f hls -hls_time 2 -hls_list_size 6 \
    -hls_flags delete_segments -hls_segment_type fmp4 "$packager/live.m3u8" &
packager_pid=$!
trap 'kill -INT $packager_pid $signer 2>/dev/null; wait $signer 2>/dev/null' EXIT INT TERM
echo "signed stream under $data/streams/ ; check it any time with: $bin --data-dir $data verify $data"
wait $packager_pid
