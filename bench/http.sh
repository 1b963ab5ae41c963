#!/usr/bin/env bash
# HTTP origin benchmark, side by side in one run: hlswarm's origin vs nginx serving the same
# files from the same data directory, both on loopback, loaded by wrk (64 connections).
# Measures requests/s and p99 latency for a media playlist and a ~1 MB segment, and hlswarm's
# peak RSS while 1,000 connections fetch playlists and segments. Rewrites the "HTTP origin"
# section of docs/BENCHMARKS.md.
#   bench/http.sh [seconds per wrk run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${1:-10}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo build --release --bin hlswarm -q
B=${CARGO_TARGET_DIR:-$ROOT/target}/release/hlswarm

# shellcheck source=bench/lib.sh
. bench/lib.sh
chmod 755 "$WORK"

# 1. A real signed stream: 12 s of 1280x720 at ~4 Mbit/s, 2 s segments (~1 MB each).
DATA=$WORK/data
"$B" --data-dir "$DATA" run --rtmp 127.0.0.1:0 --no-http --no-swarm --no-moq --stream-key bench >"$WORK/ingest.log" 2>&1 &
NODE=$!; PIDS+=("$NODE")
wait_line "$WORK/ingest.log" "rtmp listening on" 30
RTMP=$(sed -n 's/^rtmp listening on //p' "$WORK/ingest.log")
ID=$(awk '/stream id/ {print $3}' "$WORK/ingest.log")
ffmpeg -v error -nostdin -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=sample_rate=48000 \
    -t 12 -c:v libx264 -preset veryfast -b:v 4M -maxrate 4M -bufsize 8M -g 60 -pix_fmt yuv420p -c:a aac \
    -f flv "rtmp://$RTMP/live/bench"
kill -TERM "$NODE"; wait "$NODE" || true
SDIR=$DATA/streams/$ID
chmod -R a+rX "$DATA/streams"; chmod 755 "$DATA"
# The segment closest to 1 MB.
SEG=$(ls -l "$SDIR"/seg/*.m4s | awk '{d=$5-1048576; if (d<0) d=-d; print d, $5, $9}' | sort -n | head -1)
SEG_SIZE=$(echo "$SEG" | awk '{print $2}')
SEG_PATH=seg/$(basename "$(echo "$SEG" | awk '{print $3}')")
PLAYLIST=source.m3u8

# 2. Both servers over the same directory.
HP=$(free_port); NP=$(free_port)
"$B" --data-dir "$DATA" run --no-rtmp --no-swarm --no-moq --http "127.0.0.1:$HP" >"$WORK/http.log" 2>&1 &
HL=$!; PIDS+=("$HL")
wait_line "$WORK/http.log" "http listening on" 30
mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on; tcp_nopush on; keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/tmp; proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp; uwsgi_temp_path $WORK/nginx/tmp; scgi_temp_path $WORK/nginx/tmp;
    types { application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; video/mp4 mp4; application/json json; }
    server {
        listen 127.0.0.1:$NP;
        root $DATA;
        location /streams/ {
            add_header Access-Control-Allow-Origin *;
            location ~ /seg/ { add_header Cache-Control "public, max-age=31536000, immutable"; add_header Access-Control-Allow-Origin *; }
        }
    }
}
CONF
mkdir -p "$WORK/nginx/tmp"
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr" &
NG=$!; PIDS+=("$NG")
end=$((SECONDS + 10))
until curl -sf -o /dev/null "http://127.0.0.1:$NP/streams/$ID/$PLAYLIST"; do
    [ $SECONDS -lt $end ] || { echo "nginx did not start" >&2; cat "$WORK/nginx/stderr" >&2; exit 1; }
    sleep 0.1
done
# Same bytes from both (playlists on disk are the signed rendering).
cmp <(curl -sf "http://127.0.0.1:$HP/streams/$ID/$PLAYLIST") "$SDIR/$PLAYLIST"
cmp <(curl -sf "http://127.0.0.1:$HP/streams/$ID/$SEG_PATH") "$SDIR/$SEG_PATH"

# wrk: requests/s and p99 latency (ms).
bench() { # url connections
    local out
    out=$(wrk -t2 -c"$2" -d"${SECS}s" --latency "$1")
    local rps p99
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
    local errs
    errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    echo "$rps $p99 ${errs:-none}"
}
declare -A R
for target in playlist segment; do
    path=$PLAYLIST; [ $target = segment ] && path=$SEG_PATH
    R[h_$target]=$(bench "http://127.0.0.1:$HP/streams/$ID/$path" 64)
    R[n_$target]=$(bench "http://127.0.0.1:$NP/streams/$ID/$path" 64)
    echo "$target: hlswarm ${R[h_$target]} | nginx ${R[n_$target]}"
done

# 1,000 concurrent viewers: 1,000 connections alternating playlist and segment requests;
# hlswarm's peak RSS (VmHWM) over the run.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cat >"$WORK/viewers.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then return wrk.format("GET", "/streams/$ID/$PLAYLIST") end
  return wrk.format("GET", "/streams/$ID/$SEG_PATH")
end
LUA
RSS_BEFORE=$(awk '/VmRSS/ {print $2}' /proc/$HL/status)
V=$(wrk -t2 -c1000 -d"${SECS}s" --timeout 10s -s "$WORK/viewers.lua" "http://127.0.0.1:$HP/" | awk '/Requests\/sec/ {r=$2} /Non-2xx|Socket errors/ {e=e $0 " "} END {print r, (e==""?"none":e)}')
RSS_PEAK=$(awk '/VmHWM/ {print $2}' /proc/$HL/status)
echo "1000 viewers: $V, RSS $RSS_BEFORE kB before, peak $RSS_PEAK kB"

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}')" "$1" "$2"; }
f() { echo "${R[$1]}" | awk -v i="$2" '{print $i}'; }
NGV=$(nginx -v 2>&1 | sed 's/.*nginx\///')
WRKV=$(wrk -v 2>&1 | head -1 | awk '{print $2}' || true)
CPU=$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')
SECTION=$(cat <<MD
## HTTP origin vs nginx

Command: \`bench/http.sh $SECS\` ($(date -u +%Y-%m-%d), $(nproc) cores, $CPU; nginx $NGV, wrk $WRKV).
Both servers read the same data directory on loopback (nginx: static files with sendfile, the
same paths). wrk runs on the same machine, so client and server share the cores. One run of
${SECS} s per row, 2 threads, 64 connections, keep-alive. The playlist is the signed media
playlist (from memory in hlswarm, from disk in nginx); the segment is a $SEG_SIZE-byte fMP4
media segment (hlswarm verifies its BLAKE3 once when it first reads it from disk and then serves
it from memory).

| request | hlswarm req/s | nginx req/s | ratio | goal | hlswarm p99 ms | nginx p99 ms | errors (hlswarm / nginx) |
|---|---|---|---|---|---|---|---|
| media playlist | $(f h_playlist 1) | $(f n_playlist 1) | $(ratio "$(f h_playlist 1)" "$(f n_playlist 1)") | ≥ 1.0 | $(f h_playlist 2) | $(f n_playlist 2) | $(echo "${R[h_playlist]}" | cut -d' ' -f3-) / $(echo "${R[n_playlist]}" | cut -d' ' -f3-) |
| segment ($SEG_SIZE B) | $(f h_segment 1) | $(f n_segment 1) | $(ratio "$(f h_segment 1)" "$(f n_segment 1)") | ≥ 0.9 | $(f h_segment 2) | $(f n_segment 2) | $(echo "${R[h_segment]}" | cut -d' ' -f3-) / $(echo "${R[n_segment]}" | cut -d' ' -f3-) |

1,000 concurrent viewers (1,000 connections, alternating playlist and segment): hlswarm
answered $(echo "$V" | awk '{print $1}') req/s (errors: $(echo "$V" | cut -d' ' -f2-)); RSS $((RSS_BEFORE / 1024)) MB before,
peak $((RSS_PEAK / 1024)) MB (goal < 100 MB).
MD
)
echo "$SECTION" | python3 bench/section.py docs/BENCHMARKS.md http
echo "wrote docs/BENCHMARKS.md (http section)"
