#!/usr/bin/env bash
# Delay from signing to verified arrival: MoQ through a moq-relay on loopback vs HTTP playlist
# (manifest) polling, measured the same way on the same stream at the same time. hlswarm run +
# ffmpeg pushing RTMP (1 s segments) + moq-relay; subscribers: `hlswarm moq-watch` through the
# relay, `hlswarm moq-watch` straight from the node, and the http-watch example polling the
# signed manifest every 1000 ms (what hls.js does at a 1 s target duration) and every 100 ms.
# Delay = subscriber clock at verified arrival - time_ms of the first manifest listing the
# segment that the subscriber saw. Rewrites the "moq" section of docs/BENCHMARKS.md.
#   bench/moq.sh [segments measured, default 40]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-40}
# bench/all.sh sets BENCH_SETUP_DONE once it has run the setup (rebuilding the web client
# would make cargo rebuild the node each time).
[ -n "${BENCH_SETUP_DONE:-}" ] || scripts/setup.sh --test >/dev/null
# BENCH_TARGET_DIR: use binaries already built there (debug or release) instead of building.
if [ -n "${BENCH_TARGET_DIR:-}" ]; then
    B=$BENCH_TARGET_DIR/hlswarm
    HW=$BENCH_TARGET_DIR/examples/http-watch
    BUILD="binaries from $(basename "$BENCH_TARGET_DIR") build"
    CMD="BENCH_TARGET_DIR=target/$(basename "$BENCH_TARGET_DIR") bench/moq.sh $N"
else
    cargo build --release --bin hlswarm --example http-watch -q -p node
    B=${CARGO_TARGET_DIR:-$ROOT/target}/release/hlswarm
    HW=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/http-watch
    BUILD="release build"
    CMD="bench/moq.sh $N"
fi
RELAY=$(command -v moq-relay || echo "${CARGO_HOME:-$HOME/.cargo}/bin/moq-relay")

# shellcheck source=bench/lib.sh
. bench/lib.sh

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=info NO_COLOR=1 "$RELAY" --listen "127.0.0.1:$PORT" --listen-tls-generate localhost --auth-public '**' \
    >"$WORK/relay.log" 2>&1 &
PIDS+=($!)
wait_line "$WORK/relay.log" 'listening.*quic' 30

"$B" --data-dir "$WORK/data" run --rtmp 127.0.0.1:0 --http 127.0.0.1:0 --moq 127.0.0.1:0 --no-swarm --stream-key bench \
    --segment-seconds 1 --moq-relay "https://localhost:$PORT/" --moq-relay-insecure >"$WORK/node.log" 2>&1 &
PIDS+=($!)
wait_line "$WORK/node.log" "moq listening on" 30
RTMP=$(sed -n 's/^rtmp listening on //p' "$WORK/node.log")
HTTP=$(sed -n 's/^http listening on //p' "$WORK/node.log")
MOQ=$(sed -n 's/^moq listening on //p' "$WORK/node.log")
ID=$(awk '/stream id/ {print $3}' "$WORK/node.log")

SECS=$((N + 20))
ffmpeg -v error -nostdin -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=sample_rate=48000 \
    -t "$SECS" -c:v libx264 -preset veryfast -tune zerolatency -b:v 2M -g 30 -pix_fmt yuv420p \
    -c:a aac -f flv "rtmp://$RTMP/live/bench" &
PIDS+=($!)

"$B" moq-watch "https://localhost:$PORT/$ID" --tls-insecure --count "$N" --timeout $((SECS + 20)) >"$WORK/moq-relay.out" &
W1=$!; PIDS+=("$W1")
"$B" moq-watch "https://localhost:${MOQ##*:}/$ID" --tls-insecure --count "$N" --timeout $((SECS + 20)) >"$WORK/moq-direct.out" &
W2=$!; PIDS+=("$W2")
"$HW" "http://$HTTP/streams/$ID/" --interval-ms 1000 --count "$N" >"$WORK/http-1000.out" &
W3=$!; PIDS+=("$W3")
"$HW" "http://$HTTP/streams/$ID/" --interval-ms 100 --count "$N" >"$WORK/http-100.out" &
W4=$!; PIDS+=("$W4")
for w in $W1 $W2 $W3 $W4; do wait "$w"; done

stats() { # FILE -> "count p50 p95 max refused"
    python3 - "$1" <<'PY'
import sys
d, refused = [], 0
for line in open(sys.argv[1]):
    if line.startswith("segment "):
        d.append(int(dict(kv.split("=", 1) for kv in line.split()[1:])["delay_ms"]))
    elif line.startswith("refused"):
        refused += 1
d = d[2:]  # the first two can predate the subscription (backfill): not live arrivals
d.sort()
q = lambda p: d[min(len(d) - 1, int(p * len(d)))]
print(len(d), q(.5), q(.95), d[-1], refused)
PY
}
ROWS=""
for name in moq-relay moq-direct http-100 http-1000; do
    read -r C P50 P95 MAX REF < <(stats "$WORK/$name.out")
    echo "$name: $C segments, delay p50 $P50 ms, p95 $P95 ms, max $MAX ms, refused $REF"
    case $name in
        moq-relay) LABEL="MoQ via moq-relay 0.17.10" ;;
        moq-direct) LABEL="MoQ from the node" ;;
        http-100) LABEL="HTTP manifest polling, 100 ms" ;;
        http-1000) LABEL="HTTP manifest polling, 1000 ms" ;;
    esac
    ROWS+="| $LABEL | $C | $P50 | $P95 | $MAX | $REF |"$'\n'
    [ "$name" = moq-relay ] && RELAY_P95=$P95
done
GOAL=$([ "$RELAY_P95" -le 50 ] && echo met || echo "not met")
# BENCH_RESULTS: keep each subscriber's per-segment output (bench/report.py plots it).
if [ -n "${BENCH_RESULTS:-}" ]; then
    mkdir -p "$BENCH_RESULTS/moq"
    cp "$WORK"/moq-relay.out "$WORK"/moq-direct.out "$WORK"/http-100.out "$WORK"/http-1000.out "$BENCH_RESULTS/moq/"
fi

CPU=$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')
python3 bench/section.py docs/BENCHMARKS.md moq <<MD
## MoQ: delay from signing to verified arrival

Goal: p95 ≤ 50 ms through the relay on loopback. Last run: **$GOAL** (p95 $RELAY_P95 ms).

\`\`\`sh
$CMD
\`\`\`

| path | segments | p50 ms | p95 ms | max ms | refused |
|---|---|---|---|---|---|
$ROWS
$(date -u +%Y-%m-%d), $(nproc) cores, $CPU, hlswarm $BUILD. ffmpeg pushes 1280x720 at 2 Mbit/s (x264 veryfast,
zerolatency, a keyframe every second) into \`hlswarm run --segment-seconds 1\`, which publishes to a
\`moq-relay\` on loopback; all four subscribers follow the same stream at the same time. *Delay* is
the subscriber's clock at verified arrival (manifest signature and chain checked, segment BLAKE3
checked) minus \`time_ms\` of the first manifest listing the segment that the subscriber saw; the
first two segments of each subscriber are left out (they may predate the subscription). HTTP
polling (the \`http-watch\` example, node/examples) fetches \`manifest.json\` with \`If-None-Match\`
at a fixed interval, then the new segment: its delay is on average half the interval plus two
round trips, and a lower bound whenever a poll skipped a manifest. A poll period equal to the
segment duration phase-locks with the signer, so its delay is nearly constant within a run but
lands anywhere from 0 to 1000 ms from run to run. MoQ pushes the manifest and then the segment's
group as soon as they are signed.
MD
echo "wrote docs/BENCHMARKS.md (moq section)"
