#!/usr/bin/env bash
# WebTorrent tracker benchmark, side by side in one run: `hlswarm tracker` vs the npm
# bittorrent-tracker server (the version tracker/interop pins), each loaded in turn by the same
# generator (bench/src/tracker_load.rs): 10,000 simulated peers on WebSocket connections in 100
# swarms, one `started` announce each, then every peer announcing in a closed loop (one offer,
# numwant 1) for SECS seconds. Records announces answered per second and the tracker's RSS.
# Rewrites the "Tracker" section of docs/BENCHMARKS.md.
#   bench/tracker.sh [seconds of steady load, default 20] [peers, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${1:-20}
PEERS=${2:-10000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

# Each side holds one socket per peer (plus a few): the generator and the tracker both need
# PEERS + 100 file descriptors.
ulimit -n $((PEERS + 1000)) 2>/dev/null || { echo "need ulimit -n >= $((PEERS + 1000))" >&2; exit 1; }
command -v node >/dev/null || { echo "needs node (scripts/setup.sh)" >&2; exit 1; }
(cd tracker/interop && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
echo "== building hlswarm (release) and the load generator"
cargo build -q --release --bin hlswarm
cargo build -q --release --manifest-path bench/Cargo.toml --target-dir "$TARGET_DIR/bench" --bin tracker-load
B=$TARGET_DIR/release/hlswarm
LOAD=$TARGET_DIR/bench/release/tracker-load

# shellcheck source=bench/lib.sh
. bench/lib.sh

# run_one NAME URL_PATH CMD...: start the tracker, load it, stop it; the result in $WORK/NAME.json.
run_one() {
    local name=$1 path=$2; shift 2
    "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!; PIDS+=("$pid")
    wait_line "$WORK/$name.log" "listening on" 30
    local addr
    addr=$(sed -n 's/.*listening on //p' "$WORK/$name.log" | head -1)
    cut -d' ' -f1 /proc/loadavg >"$WORK/$name.load"
    echo "== $name at ws://$addr$path: $PEERS peers, ${SECS}s (load average $(cat "$WORK/$name.load"))"
    timeout $((SECS + 300)) "$LOAD" --url "ws://$addr$path" --pid "$pid" --peers "$PEERS" --swarms 100 \
        --secs "$SECS" --connect-timeout-s 180 | tee "$WORK/$name.json"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

run_one hlswarm /tracker "$B" tracker --listen 127.0.0.1:0 --max-connections-per-ip $((PEERS + 100))
run_one bittorrent-tracker "" node bench/bt-tracker.mjs

BT_VERSION=$(node -p 'require("./tracker/interop/node_modules/bittorrent-tracker/package.json").version')
CPU=$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')
SECTION=$(python3 - "$WORK" "$SECS" "$PEERS" "$BT_VERSION" "$CPU" "$(nproc)" "$(node --version)" <<'PY'
import json, sys, datetime
work, secs, peers, btv, cpu, cores, nodev = sys.argv[1:8]
r = {n: json.load(open(f"{work}/{n}.json")) for n in ("hlswarm", "bittorrent-tracker")}
load = {n: open(f"{work}/{n}.load").read().strip() for n in r}
mib = lambda k: f"{k / 1024:.0f}"
rows = []
for n, label in (("hlswarm", "`hlswarm tracker`"), ("bittorrent-tracker", f"bittorrent-tracker {btv} (Node {nodev})")):
    x = r[n]
    per_cpu = x["announces"] / max(x["server_cpu_s"], 0.01)
    rows.append(f"| {label} | {load[n]} | {x['connected']} | {x['connect_s']:.1f} | {x['per_sec']:.0f} | {per_cpu:.0f} | {mib(x['rss_idle_kib'])} | "
                f"{mib(x['hwm_kib'])} | {x['server_cpu_s']:.1f} | {x['generator_cpu_s']:.1f} | {x['errors']} |")
ratio = r["hlswarm"]["per_sec"] / max(r["bittorrent-tracker"]["per_sec"], 1)
eff = lambda x: x["announces"] / max(x["server_cpu_s"], 0.01)
cpu_ratio = eff(r["hlswarm"]) / max(eff(r["bittorrent-tracker"]), 1)
mem = r["hlswarm"]["hwm_kib"] / max(r["bittorrent-tracker"]["hwm_kib"], 1)
print(f"""## Tracker

Command: `bench/tracker.sh {secs} {peers}` ({datetime.date.today()}, {cores} cores, {cpu}; *load*
is the machine's load average as each run starts, mostly other jobs sharing it).
One load generator (`tracker-load` in bench/, one tokio worker thread) drives each tracker in
turn on loopback (both answer on one thread: Node's event loop, and `hlswarm tracker`'s default
`--threads 1`): {peers} simulated peers, one WebSocket connection each, in 100 swarms; each
announces once (`started`), then all announce in a closed loop for {secs} s (one SDP offer per
announce, `numwant` 1, so every announce also relays one offer to another peer; the generator
waits for each announce reply before the next). *announces/s* counts the replies in that phase;
RSS is the tracker's VmRSS once all peers are connected and its peak (VmHWM); CPU seconds are
the tracker's and the generator's over the steady phase; *per CPU s* is announces answered per
second of the tracker's own CPU time, the fairer measure when other jobs share the machine (a
tracker that got a whole core would use about {secs} CPU s). Goal: ≥ 4× bittorrent-tracker.

| tracker | load | peers connected | connect s | announces/s | per CPU s | RSS idle MiB | RSS peak MiB | tracker CPU s | generator CPU s | errors |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

hlswarm / bittorrent-tracker: **{ratio:.1f}×** the announces per second, {cpu_ratio:.1f}× per CPU second,
peak memory {mem:.1f}× bittorrent-tracker's.""")
PY
)
echo "$SECTION" | python3 bench/section.py docs/BENCHMARKS.md tracker
echo "wrote docs/BENCHMARKS.md (tracker section)"
