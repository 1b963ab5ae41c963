#!/usr/bin/env bash
# P2P share with N viewers: hlswarm run + ffmpeg pushing RTMP + N watch pages in separate headless
# Chromium processes (WebRTC over loopback through the node's embedded tracker), each opened once
# the previous one plays. Measures, over SPAN seconds starting one minute after the first viewer
# began playing, the share of verified segment bytes the viewers got from peers, and each one's
# latency behind live. Rewrites the "P2P share" section of docs/BENCHMARKS.md.
#   bench/p2p.sh [viewers, default 3] [segment seconds, default 2] [span seconds, default 60]
#   P2P_WARM=20 bench/p2p.sh ...   # start measuring sooner than one minute (bench/all.sh --quick)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-3}
SEG=${2:-2}
SPAN=${3:-60}
WARM=${P2P_WARM:-60}
LOAD=$(cut -d' ' -f1 /proc/loadavg)
# bench/all.sh sets BENCH_SETUP_DONE once it has run the setup (rebuilding the web client
# would make cargo rebuild the node each time).
[ -n "${BENCH_SETUP_DONE:-}" ] || scripts/setup.sh --test >/dev/null
cargo build --release --bin hlswarm -q
B=${CARGO_TARGET_DIR:-$ROOT/target}/release/hlswarm

# shellcheck source=bench/lib.sh
. bench/lib.sh

"$B" --data-dir "$WORK/data" run --rtmp 127.0.0.1:0 --http 127.0.0.1:0 --no-swarm --no-moq --stream-key bench \
    --segment-seconds "$SEG" >"$WORK/node.log" 2>&1 &
NODE=$!; PIDS+=("$NODE")
wait_line "$WORK/node.log" "http listening on" 30
RTMP=$(sed -n 's/^rtmp listening on //p' "$WORK/node.log")
HTTP=$(sed -n 's/^http listening on //p' "$WORK/node.log")
ID=$(awk '/stream id/ {print $3}' "$WORK/node.log")
TOTAL=$((WARM + SPAN + 40 * N + 30))
ffmpeg -v error -nostdin -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=sample_rate=48000 \
    -t "$TOTAL" -c:v libx264 -preset veryfast -tune zerolatency -b:v 2M -g $((30 * SEG)) -pix_fmt yuv420p \
    -c:a aac -f flv "rtmp://$RTMP/live/bench" &
FF=$!; PIDS+=("$FF")
timeout $((TOTAL + 60)) python3 bench/p2p_share.py "http://$HTTP/watch/$ID?ll=0" "$N" "$WARM" "$SPAN" >"$WORK/result.json"
cat "$WORK/result.json"
if [ -n "${BENCH_RESULTS:-}" ]; then mkdir -p "$BENCH_RESULTS"; cp "$WORK/result.json" "$BENCH_RESULTS/p2p.json"; fi
kill "$FF" 2>/dev/null || true
kill -TERM "$NODE"; wait "$NODE" || true

CPU=$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')
SECTION=$(python3 - "$WORK/result.json" "$N" "$SEG" "$SPAN" "$CPU" "$(nproc)" "$LOAD" <<'PY'
import json, sys, datetime
r = json.load(open(sys.argv[1]))
n, seg, span, cpu, cores, load = sys.argv[2:8]
f = lambda x: "–" if x is None else f"{x:.2f}"
mib = lambda b: f"{b / 1048576:.1f}"
rows = "\n".join(
    f"| {p['viewer']} | {', '.join(x for x in p['roles'] if x)} | {mib(p['http'])} | {mib(p['p2p'])} | {100 * p['share']:.0f} % | "
    f"{mib(p['uploaded'])} | {f(p['latency_p50'])} | {f(p['latency_p95'])} | {p['segment_failures']} | {p['unverified_loaded']} |"
    for p in r["per_viewer"])
print(f"""## P2P share

Command: `bench/p2p.sh {n} {seg} {span}` ({datetime.date.today()}, {cores} cores, {cpu}; load average
{load} at the start, from other jobs sharing the machine).
`hlswarm run` with {seg} s segments, ffmpeg pushing 1280x720 at 2 Mbit/s, and {n} watch pages in
separate headless Chromium processes on the same machine, each opened once the previous one
plays; peers meet through the node's embedded tracker and exchange segments over WebRTC on
loopback. Measured over {span} s starting one minute after the first viewer began playing:
verified segment bytes by source, and latency behind live (hls.js) per viewer. The best possible
share is (n−1)/n = {100 * r['optimum']:.0f} % (someone fetches each segment over HTTP); goal
≥ 0.8 × (n−1)/n = {100 * r['goal']:.0f} %.

| viewer | role | HTTP MiB | peers MiB | from peers | uploaded MiB | latency p50 s | latency p95 s | refused | unverified |
|---|---|---|---|---|---|---|---|---|---|
{rows}

All viewers: **{100 * r['share']:.0f} %** of segment bytes from peers (goal {100 * r['goal']:.0f} %).""")
PY
)
echo "$SECTION" | python3 bench/section.py docs/BENCHMARKS.md p2p
echo "wrote docs/BENCHMARKS.md (p2p section)"
