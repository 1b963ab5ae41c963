#!/usr/bin/env bash
# Every side-by-side benchmark in bench/, one after another on this machine, then rewrites
# docs/BENCHMARKS.md: how and where it ran (machine, load, peers' versions, commit), a summary
# of every headline number with its goal and its ratio to the peer, plots (docs/bench/*.svg),
# and each script's own section.
#
#   bench/all.sh            # about 15 minutes on 2 cores (plus a node build after a web client
#                           # rebuild); run it on a quiet machine
#   bench/all.sh --quick    # a few minutes of short runs to check that everything works; the
#                           # report goes to the results directory, docs/ is left alone
#
# Sets up what the scripts need first (scripts/setup.sh --test, then nginx, nginx-rtmp and wrk
# with apt) and stops with the list of what is missing if that fails. Each script writes its
# section into a copy of BENCHMARKS.md in the results directory; docs/BENCHMARKS.md is replaced
# only when every script succeeded. Raw samples and every script's output stay in the results
# directory (BENCH_RESULTS, default a new temporary directory). Each script runs in a process
# group of its own and stops what it started; on Ctrl-C or SIGTERM this script stops that group.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
case "${1:-}" in
    --quick) QUICK=1 ;;
    "") ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
RESULTS=${BENCH_RESULTS:-$(mktemp -d -t hlswarm-bench.XXXXXX)}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to install: $*" >&2; return 1
    fi
}

# 1. Peers and tools. ingest.sh and http.sh would install their apt packages themselves; doing it
#    here first means a missing peer stops the run before anything is measured.
echo "== setting up (scripts/setup.sh --test, nginx, nginx-rtmp, wrk)"
scripts/setup.sh --test >"$RESULTS/setup.log" 2>&1 || { tail -20 "$RESULTS/setup.log" >&2; echo "scripts/setup.sh --test failed (log: $RESULTS/setup.log)" >&2; exit 1; }
apt_missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || apt_missing+=(libnginx-mod-rtmp)
command -v wrk >/dev/null || apt_missing+=(wrk)
if [ ${#apt_missing[@]} -gt 0 ]; then
    { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
        --no-install-recommends "${apt_missing[@]}"; } >>"$RESULTS/setup.log" 2>&1 || true
fi
missing=()
need() { "${@:2}" >/dev/null 2>&1 || missing+=("$1"); }
need "nginx (bench/http.sh)" sh -c 'command -v nginx || test -x /usr/sbin/nginx'
need "libnginx-mod-rtmp (bench/ingest.sh)" test -e /usr/lib/nginx/modules/ngx_rtmp_module.so
need "wrk (bench/http.sh)" command -v wrk
need "ffmpeg" command -v ffmpeg
need "python3" command -v python3
need "node (bench/tracker.sh, p2p.sh, latency.sh)" command -v node
need "chromium (bench/p2p.sh, latency.sh)" test -x /usr/bin/chromium
need "bittorrent-tracker in tracker/interop (bench/tracker.sh)" test -d tracker/interop/node_modules/bittorrent-tracker
need "moq-relay (bench/moq.sh)" sh -c "command -v moq-relay || test -x '${CARGO_HOME:-$HOME/.cargo}/bin/moq-relay'"
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing, and could not be installed (log: $RESULTS/setup.log):" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi

# 2. Build once, so that no script builds inside a measurement.
echo "== building (release): hlswarm, http-watch, the bench tools"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# The same invocations as the scripts (an example unifies features differently), so theirs are no-ops.
cargo build -q --release --bin hlswarm
cargo build -q --release --bin hlswarm --example http-watch -p node
cargo build -q --release --manifest-path bench/Cargo.toml --target-dir "$TARGET_DIR/bench"

# 3. Run every script: its section goes into a copy of BENCHMARKS.md, raw samples into RESULTS.
cp docs/BENCHMARKS.md "$RESULTS/BENCHMARKS.md"
export BENCH_DOC=$RESULTS/BENCHMARKS.md BENCH_RESULTS=$RESULTS BENCH_SETUP_DONE=1
if [ "$QUICK" = 1 ]; then
    RUNS=(
        "ingest|BENCH_SECONDS=10 BENCH_TS=1|bench/ingest.sh"
        "http||bench/http.sh 2"
        "tracker||bench/tracker.sh 3 1000"
        "swarm|SEEDERS=3|bench/swarm.sh 10"
        "p2p|P2P_WARM=40|bench/p2p.sh 2 2 10"
        "moq||bench/moq.sh 8"
        "latency||bench/latency.sh 5"
    )
else
    RUNS=(
        "ingest|BENCH_SECONDS=90 BENCH_TS=1|bench/ingest.sh"
        "http||bench/http.sh 10"
        "tracker||bench/tracker.sh 20 10000"
        "swarm|SEEDERS=10|bench/swarm.sh 60"
        "p2p||bench/p2p.sh 4 2 60"
        "moq||bench/moq.sh 30"
        "latency||bench/latency.sh 30"
    )
fi

SAMPLER= CURRENT=
stop_all() {
    if [ -n "$CURRENT" ]; then
        kill -TERM -- "-$CURRENT" 2>/dev/null || true
        wait "$CURRENT" 2>/dev/null || true   # its own cleanup: stop by PID, remove scratch
    fi
    [ -n "$SAMPLER" ] && kill -- "-$SAMPLER" 2>/dev/null || true
}
trap stop_all EXIT
trap 'echo "interrupted; stopping the running benchmark" >&2; exit 130' INT TERM

cpu_busy() { awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
read -r BUSY0 TOTAL0 < <(cpu_busy)
START=$SECONDS
: >"$RESULTS/load.txt"
setsid bash -c 'while sleep 5; do cut -d" " -f1-3 /proc/loadavg >>"$1"; done' sampler "$RESULTS/load.txt" &
SAMPLER=$!

for run in "${RUNS[@]}"; do
    IFS='|' read -r name envs cmd <<<"$run"
    echo "== $name: ${envs:+$envs }$cmd   (output: $RESULTS/$name.log)"
    t0=$SECONDS
    # shellcheck disable=SC2086
    env $envs setsid $cmd > >(tee "$RESULTS/$name.log") 2>&1 &
    CURRENT=$!
    if ! wait "$CURRENT"; then
        CURRENT=
        echo "FAILED: ${envs:+$envs }$cmd (its output: $RESULTS/$name.log); docs/BENCHMARKS.md not changed" >&2
        exit 1
    fi
    CURRENT=
    echo "== $name done in $((SECONDS - t0)) s"
done
kill -- "-$SAMPLER" 2>/dev/null || true
SAMPLER=

# 4. The report: how and where, the summary, the plots.
read -r BUSY1 TOTAL1 < <(cpu_busy)
COMMIT=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . 2>/dev/null || COMMIT="$COMMIT (with uncommitted changes)"
python3 - "$RESULTS/run.json" <<PY
import json, sys
json.dump({
    "command": "bench/all.sh$([ "$QUICK" = 1 ] && echo ' --quick')",
    "date": "$(date -u +%Y-%m-%d)",
    "commit": "$COMMIT",
    "minutes": $((SECONDS - START)) / 60,
    "load_before": "$LOAD_BEFORE",
    "cpu_busy_percent": round(100 * ($BUSY1 - $BUSY0) / max($TOTAL1 - $TOTAL0, 1)),
}, open(sys.argv[1], "w"))
PY
PLOTS=$([ "$QUICK" = 1 ] && echo "$RESULTS/bench" || echo docs/bench)
python3 bench/report.py --doc "$RESULTS/BENCHMARKS.md" --results "$RESULTS" --plots "$PLOTS" --svg-ref bench/
if [ "$QUICK" = 1 ]; then
    echo "quick run done in $((SECONDS - START)) s: report in $RESULTS/BENCHMARKS.md (docs/ not changed)"
else
    cp "$RESULTS/BENCHMARKS.md" docs/BENCHMARKS.md
    echo "done in $((SECONDS - START)) s: docs/BENCHMARKS.md and $PLOTS rewritten; raw data in $RESULTS"
fi
