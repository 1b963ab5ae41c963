#!/usr/bin/env bash
# Latency behind live in the browser: hlswarm run + ffmpeg pushing RTMP + headless Chromium, at
# 1 s and 2 s segments (200 ms parts): three viewers at once: the verifying watch page with
# peer-assisted playback off (?p2p=0: plain hls.js with the verifying loaders, classic HLS), the
# same page with it on (with no peers in its swarm, a lone viewer), and stock hls.js in LL-HLS
# mode playing the node's master.m3u8 directly, unverified (bench/web/ll-player.html). Samples hls.js's latency (live edge minus
# playhead) and the wall-clock latency (now minus the program date-time at the playhead, which
# includes encoding, segmenting, signing and fetching) every 250 ms after 15 s of playback.
# Rewrites the "Latency behind live" section of docs/BENCHMARKS.md.
#   bench/latency.sh [seconds of playback sampled, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SAMPLE=${1:-30}
# bench/all.sh sets BENCH_SETUP_DONE once it has run the setup (rebuilding the web client
# would make cargo rebuild the node each time).
[ -n "${BENCH_SETUP_DONE:-}" ] || scripts/setup.sh --test >/dev/null
cargo build --release --bin hlswarm -q
B=${CARGO_TARGET_DIR:-$ROOT/target}/release/hlswarm

# shellcheck source=bench/lib.sh
. bench/lib.sh

LOAD=$(cut -d' ' -f1 /proc/loadavg)
ROWS=""
for SEG in 1 2; do
    D=$WORK/seg$SEG
    mkdir -p "$D"
    "$B" --data-dir "$D/data" run --rtmp 127.0.0.1:0 --http 127.0.0.1:0 --no-swarm --no-moq --stream-key bench \
        --segment-seconds "$SEG" >"$D/node.log" 2>&1 &
    NODE=$!; PIDS+=("$NODE")
    wait_line "$D/node.log" "http listening on" 30
    RTMP=$(sed -n 's/^rtmp listening on //p' "$D/node.log")
    HTTP=$(sed -n 's/^http listening on //p' "$D/node.log")
    ID=$(awk '/stream id/ {print $3}' "$D/node.log")
    TOTAL=$((SAMPLE + 30))
    # The LL-HLS player page and hls.js, served from a scratch directory on loopback.
    mkdir -p "$D/web"
    cp bench/web/ll-player.html web-client/node_modules/hls.js/dist/hls.js "$D/web/"
    WEBPORT=$(free_port)
    python3 -u -m http.server "$WEBPORT" --bind 127.0.0.1 --directory "$D/web" >"$D/web.log" 2>&1 &
    PIDS+=("$!")
    wait_line "$D/web.log" "Serving HTTP" 10
    ffmpeg -v error -nostdin -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=sample_rate=48000 \
        -t "$TOTAL" -c:v libx264 -preset veryfast -tune zerolatency -b:v 2M -g $((30 * SEG)) -pix_fmt yuv420p \
        -c:a aac -f flv "rtmp://$RTMP/live/bench" &
    FF=$!; PIDS+=("$FF")
    # Both viewers at once (so both join at the same point of the stream, under the same load):
    # one with peer-assisted playback off, one on (alone in its swarm: the other has no peers).
    # Each samples after 15 s of playback, for SAMPLE seconds. A driver runs until its stdin
    # closes: feed it from a sleep that bash does not wait for.
    # The viewers join a running stream: once its window holds 4 segments (a stock player does
    # not retry a missing master, and a player that joins the first segment starts behind).
    live() { [ "$(curl -sf "http://$HTTP/streams/$ID/source.m3u8" | grep -c '^#EXTINF')" -ge 4 ]; }
    for _ in $(seq 150); do live && break; sleep 0.2; done
    live || { echo "no 4-segment playlist after 30 s" >&2; exit 1; }
    for MODE in off on ll; do
        case $MODE in
            off) URL="http://$HTTP/watch/$ID?ll=0&p2p=0" ;;
            on) URL="http://$HTTP/watch/$ID?ll=0" ;;
            ll) URL="http://127.0.0.1:$WEBPORT/ll-player.html?src=http://$HTTP/streams/$ID/master.m3u8" ;;
        esac
        node web-client/test/e2e/driver.mjs --url "$URL" --timeout-s $((SAMPLE + 25)) \
            < <(sleep $((SAMPLE + 30))) >"$D/$MODE.jsonl" &
        PIDS+=("$!")
    done
    wait "${PIDS[@]: -3}"
    for MODE in off on ll; do
        python3 -c '
import json, sys
warm, span = 15.0, float(sys.argv[1])
start, hls, wall, fails = None, [], [], 0
for line in sys.stdin:
    s = json.loads(line).get("stats") or {}
    if not s.get("currentTime") or s.get("paused"):
        continue
    t = json.loads(line)["t_ms"] / 1000
    start = start if start is not None else t
    if t - start < warm:
        continue
    if t - start > warm + span:
        break
    if s.get("latency") is not None: hls.append(s["latency"])
    if s.get("latencyWall") is not None: wall.append(s["latencyWall"])
    fails = s.get("segmentFailures", 0) + s.get("manifestFailures", 0)
def q(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
print(len(hls), q(hls, .5), q(hls, .95), q(wall, .5), q(wall, .95), fails)
' "$SAMPLE" <"$D/$MODE.jsonl" >"$D/result"
        read -r N H50 H95 W50 W95 FAILS <"$D/result"
        echo "segments ${SEG}s, $MODE: $N samples, hls.js latency p50 $H50 s p95 $H95 s, wall p50 $W50 s p95 $W95 s, failures $FAILS"
        GOAL="≤ $((3 * SEG)) s"
        [ "$MODE" = ll ] && GOAL="≤ 1.5 s / ≤ 2.0 s"
        case $MODE in
            off) WHAT="watch page, classic HLS, verified" ;;
            on) WHAT="watch page + p2p, classic HLS, verified" ;;
            ll) WHAT="stock hls.js, LL-HLS (200 ms parts), unverified" ;;
        esac
        ROWS+="| $SEG s | $WHAT | $N | $(printf %.2f "$H50") | $(printf %.2f "$H95") | $(printf %.2f "$W50") | $(printf %.2f "$W95") | $GOAL | $FAILS |"$'\n'
    done
    kill "$FF" 2>/dev/null || true
    kill -TERM "$NODE"; wait "$NODE" || true
    # BENCH_RESULTS: keep the drivers' samples (one JSON line per 250 ms).
    if [ -n "${BENCH_RESULTS:-}" ]; then
        mkdir -p "$BENCH_RESULTS/latency"
        for MODE in off on ll; do cp "$D/$MODE.jsonl" "$BENCH_RESULTS/latency/seg$SEG-$MODE.jsonl"; done
    fi
done

CPU=$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')
SECTION=$(cat <<MD
## Latency behind live in the browser

Command: \`bench/latency.sh $SAMPLE\` ($(date -u +%Y-%m-%d), $(nproc) cores, $CPU; Chromium
$(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), hls.js 1.7.4 with liveSyncDurationCount 3 (its default);
load average $LOAD at the start, from other jobs sharing the machine).
ffmpeg pushes 1280x720 at 2 Mbit/s (x264 veryfast, zerolatency, keyframe every segment) into
\`hlswarm run\`; the verifying watch page plays it in headless Chromium on the same machine: two
viewers at once, one with peer-assisted playback off (\`?p2p=0\`: plain hls.js with the verifying
loaders), one on (the default page, through p2p-media-loader; alone in its swarm, a lone viewer,
which also plays at 1.1x while more than 1.5 target durations behind live: hls.js by itself does
not catch up, and starts 3 target durations behind).
The viewers join once the playlist holds 4 segments (a running stream). Samples every 250 ms
over ${SAMPLE} s, after 15 s of playback. *hls.js* is hls.js's own measure
(live edge minus playhead); *wall* is now minus the program date-time of the frame playing. The
node stamps program date-times from the stream's own timestamps, anchored to when its first
segment arrived, so *wall* is the time since the playing frame reached the node: it counts
segmenting, signing, fetching, verifying and buffering, but not the encoder or the uplink.
The third viewer is stock hls.js in LL-HLS mode (\`lowLatencyMode\`, and
\`maxLiveSyncPlaybackRate: 1.5\` so that it catches up with the live edge: by default it does
not) on the node's own \`master.m3u8\`, without
any verification: the latency a third-party LL-HLS player gets from \`hlswarm run\` today (the
watch page does not play LL-HLS yet). Goal for the classic page: ≤ 3 segment durations; for
LL-HLS (the signed-parts issue): hls.js p95 ≤ 1.5 s, wall p95 ≤ 2.0 s.

| segments | viewer | samples | hls.js p50 s | hls.js p95 s | wall p50 s | wall p95 s | goal | verification failures |
|---|---|---|---|---|---|---|---|---|
${ROWS%$'\n'}
MD
)
echo "$SECTION" | python3 bench/section.py docs/BENCHMARKS.md latency
echo "wrote docs/BENCHMARKS.md (latency section)"
