#!/usr/bin/env bash
# Latency behind live in the browser: hlswarm run + ffmpeg pushing RTMP + headless Chromium, at
# 1 s and 2 s segments (200 ms parts), four viewers at once: the verifying watch page in LL-HLS
# mode (every part verified), the same page in classic HLS (?ll=0&p2p=0), the watch page of an
# `hlswarm seed` node that follows the origin over a loopback swarm (LL-HLS, parts relayed by
# the swarm), and stock hls.js in LL-HLS mode playing the node's master.m3u8 directly,
# unverified (bench/web/ll-player.html). Samples hls.js's latency (live edge minus playhead) and
# the wall-clock latency (now minus the program date-time at the playhead) every 250 ms after
# 15 s of playback. Then the origin's ingest-to-signed-part p95 (hlswarm_part_signing_seconds)
# and, after both runs, bench/ingest.sh's CPU per stream-minute against nginx-rtmp (same
# build, parts on). Rewrites the "Latency behind live" section of docs/BENCHMARKS.md.
#   bench/latency.sh [seconds of playback sampled, default 30]
#   BENCH_INGEST=0 bench/latency.sh   # skip the nginx-rtmp CPU comparison
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
EXTRA=""
MODES="ll hls seed stock"
SWARM=(--p2p /ip4/127.0.0.1/tcp/0 --no-mdns --no-moq)
for SEG in 1 2; do
    D=$WORK/seg$SEG
    mkdir -p "$D"
    "$B" --data-dir "$D/data" run --rtmp 127.0.0.1:0 --http 127.0.0.1:0 "${SWARM[@]}" --stream-key bench \
        --segment-seconds "$SEG" >"$D/node.log" 2>&1 &
    NODE=$!; PIDS+=("$NODE")
    wait_line "$D/node.log" "p2p listening on" 30
    wait_line "$D/node.log" "http listening on" 30
    RTMP=$(sed -n 's/^rtmp listening on //p' "$D/node.log")
    HTTP=$(sed -n 's/^http listening on //p' "$D/node.log")
    P2P=$(sed -n 's/^p2p listening on //p' "$D/node.log" | head -1)
    ID=$(awk '/stream id/ {print $3}' "$D/node.log")
    # The seeder: follows the origin over the loopback swarm only (the HTTP origin is its
    # fallback for what the swarm does not deliver in time), serves its own watch page.
    "$B" --data-dir "$D/seed" seed "$ID" --peer "$P2P" --http 127.0.0.1:0 "${SWARM[@]}" >"$D/seed.log" 2>&1 &
    SEEDER=$!; PIDS+=("$SEEDER")
    wait_line "$D/seed.log" "http listening on" 30
    SEEDHTTP=$(sed -n 's/^http listening on //p' "$D/seed.log")
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
    for MODE in $MODES; do
        case $MODE in
            ll) URL="http://$HTTP/watch/$ID?p2p=0" ;;
            hls) URL="http://$HTTP/watch/$ID?ll=0&p2p=0" ;;
            seed) URL="http://$SEEDHTTP/watch/$ID?p2p=0" ;;
            stock) URL="http://127.0.0.1:$WEBPORT/ll-player.html?src=http://$HTTP/streams/$ID/master.m3u8" ;;
        esac
        node web-client/test/e2e/driver.mjs --url "$URL" --timeout-s $((SAMPLE + 25)) \
            < <(sleep $((SAMPLE + 30))) >"$D/$MODE.jsonl" &
        PIDS+=("$!")
    done
    wait "${PIDS[@]: -4}"
    # Ingest to signed part, p95: the bucket of the origin's histogram that holds the 95th part.
    SIGN95=$(curl -sf "http://$HTTP/metrics" | python3 -c '
import sys
b = [(float(l.split("le=\"")[1].split("\"")[0].replace("+Inf", "inf")), float(l.rsplit(" ", 1)[1]))
     for l in sys.stdin if l.startswith("hlswarm_part_signing_seconds_bucket")]
n = b[-1][1] if b else 0
print(next((f"{le * 1000:g}" for le, c in b if n and c >= 0.95 * n), "nan"), int(n))')
    read -r SIGN95_MS SIGNED_PARTS <<<"$SIGN95"
    echo "segments ${SEG}s: ingest to signed part p95 <= $SIGN95_MS ms ($SIGNED_PARTS parts)"
    EXTRA+="- ${SEG} s segments: ingest to signed part p95 ≤ $SIGN95_MS ms over $SIGNED_PARTS parts (\`hlswarm_part_signing_seconds\`, the bucket holding the 95th percentile)."$'\n'
    for MODE in $MODES; do
        python3 -c '
import json, sys
warm, span = 15.0, float(sys.argv[1])
start, hls, wall, fails, mode = None, [], [], 0, "-"
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
    fails = s.get("segmentFailures", 0) + s.get("manifestFailures", 0) + s.get("partFailures", 0)
    mode = s.get("mode") or "-"
def q(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
print(len(hls), q(hls, .5), q(hls, .95), q(wall, .5), q(wall, .95), fails, mode)
' "$SAMPLE" <"$D/$MODE.jsonl" >"$D/result"
        read -r N H50 H95 W50 W95 FAILS SHOWN <"$D/result"
        echo "segments ${SEG}s, $MODE ($SHOWN): $N samples, hls.js latency p50 $H50 s p95 $H95 s, wall p50 $W50 s p95 $W95 s, failures $FAILS"
        case $MODE in
            ll) WHAT="watch page, LL-HLS, every part verified"; GOAL="≤ 1.5 s / ≤ 2.0 s"; LLW50=$W50 ;;
            hls) WHAT="watch page, classic HLS, verified"; GOAL="≤ $((3 * SEG)) s" ;;
            seed) WHAT="a seeder's watch page, LL-HLS, parts over the swarm, verified"; GOAL="≤ origin's + 0.5 s"; SEEDW50=$W50 ;;
            stock) WHAT="stock hls.js, LL-HLS, unverified"; GOAL="(reference)" ;;
        esac
        ROWS+="| $SEG s | $WHAT | $N | $(printf %.2f "$H50") | $(printf %.2f "$H95") | $(printf %.2f "$W50") | $(printf %.2f "$W95") | $GOAL | $FAILS |"$'\n'
    done
    BEHIND=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) - float(sys.argv[2]):.2f}")' "$SEEDW50" "$LLW50")
    echo "segments ${SEG}s: the seeder's viewer is $BEHIND s behind the origin's (wall p50)"
    EXTRA+="- ${SEG} s segments: the seeder's viewer plays $BEHIND s behind the origin's LL-HLS viewer (wall p50; goal ≤ 0.5 s)."$'\n'
    kill "$FF" 2>/dev/null || true
    kill -TERM "$SEEDER" "$NODE"; wait "$SEEDER" "$NODE" || true
    # BENCH_RESULTS: keep the drivers' samples (one JSON line per 250 ms).
    if [ -n "${BENCH_RESULTS:-}" ]; then
        mkdir -p "$BENCH_RESULTS/latency"
        for MODE in $MODES; do cp "$D/$MODE.jsonl" "$BENCH_RESULTS/latency/seg$SEG-$MODE.jsonl"; done
    fi
done

# Ingest CPU against nginx-rtmp, the same build with parts on (bench/ingest.sh, 60 s, fMP4).
if [ "${BENCH_INGEST:-1}" = 1 ]; then
    BENCH_RESULTS=$WORK/ingest BENCH_DOCS=0 BENCH_TS=0 BENCH_SECONDS=60 bench/ingest.sh >"$WORK/ingest.log" 2>&1 \
        || { cat "$WORK/ingest.log" >&2; exit 1; }
    CPU_RATIO=$(python3 -c '
import json, sys
t = {x["name"]: x for x in json.load(open(sys.argv[1]))["targets"]}
h, n = t["hlswarm"]["cpu_seconds_per_stream_minute"], t["nginx-rtmp"]["cpu_seconds_per_stream_minute"]
print(f"{h:.3f} {n:.3f} {h / n:.2f}")' "$WORK/ingest/ingest.json")
    read -r CPU_HS CPU_NG CPU_X <<<"$CPU_RATIO"
    echo "ingest CPU s per stream-minute: hlswarm $CPU_HS, nginx-rtmp $CPU_NG ($CPU_X x)"
    EXTRA+="- Ingest CPU per stream-minute, parts on (\`BENCH_SECONDS=60 BENCH_TS=0 bench/ingest.sh\`, right after): hlswarm $CPU_HS s, nginx-rtmp $CPU_NG s: ${CPU_X}× (goal ≤ 1.0×)."$'\n'
fi

CPU=$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')
SECTION=$(cat <<MD
## Latency behind live in the browser

Command: \`bench/latency.sh $SAMPLE\` ($(date -u +%Y-%m-%d), $(nproc) cores, $CPU; Chromium
$(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), hls.js 1.7.4 with liveSyncDurationCount 3 (its default);
load average $LOAD at the start, from other jobs sharing the machine).
ffmpeg pushes 1280x720 at 2 Mbit/s (x264 veryfast, zerolatency, keyframe every segment) into
\`hlswarm run\` (200 ms parts); an \`hlswarm seed\` node follows it over a loopback swarm. Four
viewers play at once in headless Chromium on the same machine: the verifying watch page in
LL-HLS mode (hls.js \`lowLatencyMode\`; every PART statement and every part verified before
hls.js sees it), the same page in classic HLS (\`?ll=0&p2p=0\`), the seeder's own watch page
in LL-HLS mode (the parts reached the seeder over the swarm: statement by gossip, bytes from
the peer that forwarded it), and stock hls.js in LL-HLS mode on the origin's \`master.m3u8\`
without any verification (bench/web/ll-player.html: \`maxLiveSyncPlaybackRate: 1.5\`, as the
watch page), the reference for what verification costs.
The viewers join once the playlist holds 4 segments (a running stream). Samples every 250 ms
over ${SAMPLE} s, after 15 s of playback. *hls.js* is hls.js's own measure
(live edge minus playhead); *wall* is now minus the program date-time of the frame playing. The
node stamps program date-times from the stream's own timestamps, anchored to when its first
segment arrived, so *wall* is the time since the playing frame reached the node: it counts
segmenting, signing, relaying, fetching, verifying and buffering, but not the encoder or the
uplink. Goals (the signed-parts issue): LL-HLS hls.js p95 ≤ 1.5 s and wall p95 ≤ 2.0 s; a
seeder's viewer at most 0.5 s behind the origin's; classic HLS ≤ 3 segment durations;
ingest to signed part p95 reported; ingest CPU ≤ 1.0× nginx-rtmp's.

| segments | viewer | samples | hls.js p50 s | hls.js p95 s | wall p50 s | wall p95 s | goal | verification failures |
|---|---|---|---|---|---|---|---|---|
${ROWS%$'\n'}

${EXTRA%$'\n'}
MD
)
echo "$SECTION" | python3 bench/section.py docs/BENCHMARKS.md latency
echo "wrote docs/BENCHMARKS.md (latency section)"
