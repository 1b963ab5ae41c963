#!/usr/bin/env bash
# Ingest benchmark, side by side in one run: hlswarm (fMP4, and MPEG-TS with BENCH_TS=1) and
# nginx-rtmp (Debian nginx + libnginx-mod-rtmp, bench/nginx-rtmp.conf.template) receive the
# same RTMP push, with 2 s segments on all. Measures CPU seconds per stream-minute and the
# segment-ready delay, and writes the "Ingest" section of docs/BENCHMARKS.md.
#
#   bench/ingest.sh                  # 90 s of 1280x720@30 H.264 (x264 -g 60) + AAC
#   BENCH_SECONDS=120 BENCH_TS=0 bench/ingest.sh
#   BENCH_DOCS=0 bench/ingest.sh     # measure only, leave docs/BENCHMARKS.md alone
#   BENCH_NOPARTS=1 bench/ingest.sh  # also hlswarm with LL-HLS parts off (--part-ms 0)
#   BENCH_SCRATCH=/dev/shm BENCH_KEEP=1 bench/ingest.sh   # scratch dir base; keep it for a look
#
# Installs nginx + libnginx-mod-rtmp (and ffmpeg) with apt only when missing. Everything runs on
# loopback in a scratch directory; every process started here is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH_SECONDS=${BENCH_SECONDS:-90}
BENCH_TS=${BENCH_TS:-1}
BENCH_NOPARTS=${BENCH_NOPARTS:-0}
BENCH_DOCS=${BENCH_DOCS:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to install: $*" >&2; exit 1
    fi
}
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || missing+=(libnginx-mod-rtmp)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "== building hlswarm (release) and the bench tool"
cargo build -q --release --bin hlswarm
cargo build -q --release --manifest-path bench/Cargo.toml --target-dir "$TARGET_DIR/bench"
HLSWARM=$TARGET_DIR/release/hlswarm
BENCH=$TARGET_DIR/bench/release/ingest-bench

WORK=$(mktemp -d -p "${BENCH_SCRATCH:-${TMPDIR:-/tmp}}")
# nginx started as root runs its worker as nobody, which must reach hls/ inside.
chmod 711 "$WORK"
PIDS=()
NG_PID=
cleanup() {
    # nginx stops gracefully on SIGQUIT, hlswarm on SIGTERM (it flushes and signs the end).
    for p in "${PIDS[@]}"; do
        if [ "$p" = "$NG_PID" ]; then kill -QUIT "$p" 2>/dev/null || true; else kill -TERM "$p" 2>/dev/null || true; fi
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # wait_port PORT PID
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { echo "process $2 exited before listening on $1" >&2; return 1; }
        sleep 0.1
    done
    echo "nothing listening on $1" >&2
    return 1
}

# The push: pre-encoded once (cached), so the encoder's CPU is never in the measurement and
# every server gets byte-identical tags.
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/hlswarm-bench
mkdir -p "$CACHE"
FLV=$CACHE/720p30-g60-aac-${BENCH_SECONDS}s.flv
ENCODE=(ffmpeg -nostdin -hide_banner -v error -y
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000
    -t "$BENCH_SECONDS" -c:v libx264 -preset veryfast -g 60 -keyint_min 60 -sc_threshold 0 -bf 2
    -b:v 3000k -maxrate 3000k -bufsize 6000k -pix_fmt yuv420p -c:a aac -b:a 128k -ac 2 -f flv)
if [ ! -s "$FLV" ]; then
    echo "== encoding the push ($BENCH_SECONDS s, cached in $CACHE)"
    "${ENCODE[@]}" "$FLV.tmp" && mv "$FLV.tmp" "$FLV"
fi

echo "== starting nginx-rtmp and hlswarm on loopback"
NG=$WORK/nginx
mkdir -p "$NG/hls" "$NG/logs" "$NG/tmp"
NG_RTMP=$(free_port)
NG_HTTP=$(free_port)
sed -e "s|__DIR__|$NG|g" -e "s|127.0.0.1:1935|127.0.0.1:$NG_RTMP|" -e "s|127.0.0.1:8080|127.0.0.1:$NG_HTTP|" \
    bench/nginx-rtmp.conf.template >"$NG/nginx.conf"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" >"$NG/logs/stdout.log" 2>&1 &
NG_PID=$!
PIDS+=("$NG_PID")
wait_port "$NG_RTMP" "$NG_PID"
NG_WORKERS=$(ps -o pid= --ppid "$NG_PID" | tr -s ' \n' ':' | sed 's/^://; s/:$//')
echo "   nginx-rtmp: pids $NG_PID:$NG_WORKERS, rtmp port $NG_RTMP"

KEY=bench-$RANDOM$RANDOM
start_hlswarm() { # start_hlswarm NAME [--ts]; sets HS_PID, HS_PORT, HS_DIR
    local name=$1; shift
    HS_PORT=$(free_port)
    "$HLSWARM" --data-dir "$WORK/$name" run --rtmp "127.0.0.1:$HS_PORT" --http 127.0.0.1:0 --no-swarm --no-moq \
        --stream-key "$KEY" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.log" &
    HS_PID=$!
    PIDS+=("$HS_PID")
    for _ in $(seq 100); do grep -q '^rtmp listening' "$WORK/$name.out" && break; sleep 0.1; done
    grep -q '^rtmp listening' "$WORK/$name.out" || { cat "$WORK/$name.log" >&2; exit 1; }
    # The signed stream's directory: DATA_DIR/streams/<stream id> (the banner prints the id).
    HS_DIR=$WORK/$name/streams/$(awk '/^  stream id/ {print $3}' "$WORK/$name.out")
    mkdir -p "$HS_DIR"
    echo "   $name: pid $HS_PID, rtmp port $HS_PORT"
}
TARGETS=(--target "name=nginx-rtmp,url=rtmp://127.0.0.1:$NG_RTMP/live/bench,watch=m3u8:$NG/hls/bench.m3u8,pids=$NG_PID:$NG_WORKERS")
start_hlswarm hlswarm
TARGETS+=(--target "name=hlswarm,url=rtmp://127.0.0.1:$HS_PORT/live/$KEY,watch=manifest:$HS_DIR/manifest.json,pids=$HS_PID")
# BENCH_NOPARTS=1: also hlswarm with LL-HLS parts off, to see what parts cost.
if [ "${BENCH_NOPARTS:-0}" = 1 ]; then
    start_hlswarm hlswarm-noparts --part-ms 0
    TARGETS+=(--target "name=hlswarm --part-ms 0,url=rtmp://127.0.0.1:$HS_PORT/live/$KEY,watch=manifest:$HS_DIR/manifest.json,pids=$HS_PID")
fi
if [ "$BENCH_TS" = 1 ]; then
    start_hlswarm hlswarm-ts --ts
    TARGETS+=(--target "name=hlswarm --ts,url=rtmp://127.0.0.1:$HS_PORT/live/$KEY,watch=manifest:$HS_DIR/manifest.json,pids=$HS_PID")
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== publishing $BENCH_SECONDS s to $(( ${#TARGETS[@]} / 2 )) servers at real-time pace (load $LOAD_BEFORE)"
"$BENCH" --flv "$FLV" --out "$WORK/result.json" --clk-tck "$(getconf CLK_TCK)" --tail 4 "${TARGETS[@]}"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

for f in "$WORK"/hlswarm*.log; do
    if grep -q -E ' (ERROR|WARN) ' "$f"; then echo "-- $(basename "$f"):"; grep -E ' (ERROR|WARN) ' "$f" | head -5; fi
done

if [ -n "${BENCH_RESULTS:-}" ]; then mkdir -p "$BENCH_RESULTS"; cp "$WORK/result.json" "$BENCH_RESULTS/ingest.json"; fi
[ "$BENCH_DOCS" = 1 ] || { cat "$WORK/result.json"; exit 0; }

export BENCH_TS BENCH_NOPARTS NGINX LOAD="$LOAD_BEFORE -> $LOAD_AFTER"
python3 bench/ingest_report.py "$WORK/result.json" docs/BENCHMARKS.md
