#!/usr/bin/env bash
# A bounded soak of what broadcasters and viewers live through: `hlswarm run` for MINUTES
# (default 20) with the publisher dropping off the network every DROP seconds (default 120) as
# OBS does (a half-open connection, then a reconnect with the same key that takes over), one
# node restart half-way, and the verifying watch page in headless Chromium throughout. Checks:
# no media sequence gap or repeat, no EXT-X-ENDLIST before the end, `hlswarm verify --archive`
# passes, at most one playback stall per drop. Rewrites the "Soak" section of docs/BENCHMARKS.md.
# Not part of scripts/test.sh: it takes MINUTES + about 1 minute.
#   bench/soak.sh [MINUTES] [DROP]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MINUTES=${1:-20}
DROP=${2:-120}
[ -n "${BENCH_SETUP_DONE:-}" ] || scripts/setup.sh --test >/dev/null
cargo build --release --bin hlswarm -q
B=${HLSWARM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/hlswarm}

# shellcheck source=bench/lib.sh
. bench/lib.sh

LOAD=$(cut -d' ' -f1 /proc/loadavg)
python3 bench/soak.py --bin "$B" --work "$WORK" --minutes "$MINUTES" --drop-every "$DROP" >"$WORK/result.json"
cat "$WORK/result.json"
[ -n "${BENCH_RESULTS:-}" ] && { mkdir -p "$BENCH_RESULTS/soak"; cp "$WORK"/{result.json,driver.jsonl,node.log} "$BENCH_RESULTS/soak/"; }
python3 - "$WORK/result.json" "$MINUTES" "$DROP" "$LOAD" <<'PY' | python3 bench/section.py docs/BENCHMARKS.md soak
import json, subprocess, sys, datetime
r = json.load(open(sys.argv[1]))
minutes, drop, load = sys.argv[2], sys.argv[3], sys.argv[4]
drops = sum(1 for e in r["events"] if e["event"] == "drop+takeover")
ok = lambda b: "yes" if b else "**no**"
max_per_drop = max(r["stalls_per_drop"] or [0])
print(f"""## Soak: publisher drops, takeovers and a node restart

Command: `bench/soak.sh {minutes} {drop}` ({datetime.date.today()}, load average {load} at the start).
`hlswarm run` (2 s segments) for {minutes} min; ffmpeg (640x360, 800 kbit/s, through a TCP proxy) drops
off the network every {drop} s: the proxy freezes its connection without closing it (half-open, as a
network drop leaves OBS's), and a new ffmpeg with the same key connects at once and takes over. The node
is restarted once half-way (SIGTERM, then the same data directory and ports). The verifying watch page
(`?p2p=0`) plays in headless Chromium for the whole run.

| check | result |
|---|---|
| publisher drops (takeovers) / node restarts | {drops} / {sum(1 for e in r["events"] if e["event"] == "node restart")} |
| segments signed (source) | {r["segments"].get("source", 0)}, {r["media_s"]} s of media |
| media sequence gaps / repeats | {r["seq_gaps"]} / {r["seq_repeats"]} |
| discontinuities signed | {r["discontinuities"]} |
| seconds the stream was signed ended before the end | {r["ended_before_the_end_s"]} |
| `hlswarm verify --archive` passes | {ok(r["verify_archive_ok"])} |
| page: segments verified / failures / unverified loaded / fatal errors | {r["page_verified_segments"]} / {r["page_segment_failures"]} / {r["page_unverified_loaded"]} / {r["page_fatal_errors"]} |
| stalls (≥ 1 s) per drop, worst | {max_per_drop} (goal ≤ 1) |
| stalls outside drops and the restart | {r["stalls_outside_drops"]} |

Stalls (start s, length s): {", ".join(f"{a}+{b}" for a, b in r["stalls"]) or "none"}. Playback reached the end of
the broadcast at {", ".join(f"{a} s" for a in r.get("end_of_broadcast_s", [])) or "(not seen)"} (not counted as a stall).""")
PY
echo "wrote docs/BENCHMARKS.md (soak section)"
