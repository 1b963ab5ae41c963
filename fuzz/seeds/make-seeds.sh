#!/usr/bin/env bash
# Regenerates the committed seed inputs under fuzz/seeds/<target>/ (needs ffmpeg, python3, cargo).
# RTMP seeds are what a real ffmpeg publisher sends, recorded by a proxy in front of the
# ingest example; FLV seeds are ffmpeg's FLV output, also rewritten as Enhanced RTMP tags;
# protocol seeds come from the test vectors in tests/vectors.
set -euo pipefail
cd "$(dirname "$0")"
SEEDS=$PWD
ROOT=$(cd ../.. && pwd)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rm -rf rtmp_session rtmp_chunks flv_tags amf signed_objects playlist
mkdir -p rtmp_session rtmp_chunks flv_tags amf signed_objects playlist

# Small, short, frequent keyframes: a few KiB that still make several 200 ms segments.
encode=(-nostdin -hide_banner -v error
    -f lavfi -i testsrc2=size=64x48:rate=10 -f lavfi -i sine=frequency=440:sample_rate=22050
    -t 1.2 -c:v libx264 -preset ultrafast -g 3 -bf 2 -c:a aac -b:a 16k -ac 1)

# --- FLV files ---
ffmpeg "${encode[@]}" -f flv "$TMP/av.flv"
ffmpeg "${encode[@]}" -an -f flv "$TMP/v.flv"
ffmpeg "${encode[@]}" -vn -f flv "$TMP/a.flv"
python3 - "$TMP" flv_tags <<'PY'
import sys, struct
tmp, out = sys.argv[1], sys.argv[2]
def tags(data):
    i = 13
    while i + 11 <= len(data):
        size = int.from_bytes(data[i+1:i+4], 'big')
        yield data[i:i+11], data[i+11:i+11+size]
        i += 11 + size + 4
def write(name, header, items):
    b = bytearray(header)
    for h, body in items:
        h = bytearray(h); h[1:4] = len(body).to_bytes(3, 'big')
        b += h + body + (11 + len(body)).to_bytes(4, 'big')
    open(f'{out}/{name}', 'wb').write(b)
def enhanced(h, body):
    # Classic AVC (frame type | codec 7, AVCPacketType, CTS) -> E-RTMP avc1:
    # 0x80 | frame type << 4 | packet type, FourCC, CTS only for CodedFrames.
    if h[0] & 0x1f != 9 or len(body) < 5 or body[0] & 0x0f != 7:
        return h, body
    ft, pt, cts, rest = body[0] >> 4, body[1], body[2:5], body[5:]
    if pt == 0:
        return h, bytes([0x80 | ft << 4 | 0]) + b'avc1' + rest
    if pt == 1:
        if cts == b'\0\0\0':
            return h, bytes([0x80 | ft << 4 | 3]) + b'avc1' + rest
        return h, bytes([0x80 | ft << 4 | 1]) + b'avc1' + cts + rest
    return h, bytes([0x80 | ft << 4 | 2]) + b'avc1'
for name in ['av', 'v', 'a']:
    data = open(f'{tmp}/{name}.flv', 'rb').read()
    t = list(tags(data))
    write(f'{name}-fmp4.flv', data[:13], t)
    ts_header = bytearray(data[:13]); ts_header[4] |= 0x80
    write(f'{name}-ts.flv', ts_header, t)
    if name != 'a':
        write(f'{name}-ertmp.flv', data[:13], [enhanced(h, b) for h, b in t])
PY

# --- RTMP client streams: ffmpeg publishing through a recording proxy to the ingest ---
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build -q -p ingest --example ingest_to_dir)
SERVER=$(free_port)
"$CARGO_TARGET_DIR/debug/examples/ingest_to_dir" "127.0.0.1:$SERVER" "$TMP/hls" key >"$TMP/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$SERVER") 2>/dev/null && break; sleep 0.1; done
record() { # record NAME FFMPEG-ARGS...
    local name=$1; shift
    local proxy; proxy=$(free_port)
    python3 - "$proxy" "$SERVER" "$TMP/$name.bin" <<'PY' &
import socket, sys, threading
lp, sp, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', lp)); ls.listen(1); ls.settimeout(30)
open(out + '.ready', 'w').close()
c, _ = ls.accept(); s = socket.create_connection(('127.0.0.1', sp))
rec = bytearray()
def back():
    while (b := s.recv(65536)):
        c.sendall(b)
t = threading.Thread(target=back, daemon=True); t.start()
while (b := c.recv(65536)):
    rec += b; s.sendall(b)
s.shutdown(socket.SHUT_WR); t.join(5)
open(out, 'wb').write(rec)
PY
    local proxy_pid=$!
    for _ in $(seq 100); do [ -e "$TMP/$name.bin.ready" ] && break; sleep 0.1; done
    ffmpeg "$@" -f flv "rtmp://127.0.0.1:$proxy/live/key" || true
    wait "$proxy_pid"
}
record av "${encode[@]}"
record v "${encode[@]}" -an
python3 - "$TMP" <<'PY'
import sys
tmp = sys.argv[1]
for name in ['av', 'v']:
    data = open(f'{tmp}/{name}.bin', 'rb').read()
    assert len(data) > 3073 and data[0] == 3, (name, len(data))
    open(f'rtmp_session/{name}-fmp4.bin', 'wb').write(b'\0' + data)
    open(f'rtmp_session/{name}-ts.bin', 'wb').write(b'\1' + data)
    open(f'rtmp_chunks/{name}.bin', 'wb').write(data[1 + 1536 + 1536:])
PY

# --- AMF0 payloads as rml_rtmp decodes them ---
python3 - <<'PY'
import struct
def s(x): x = x.encode(); return b'\x02' + struct.pack('>H', len(x)) + x
def n(x): return b'\x00' + struct.pack('>d', x)
def prop(k, v): k = k.encode(); return struct.pack('>H', len(k)) + k + v
end = b'\x00\x00\x09'
seeds = {
    'connect': s('connect') + n(1) + b'\x03' + prop('app', s('live')) + prop('tcUrl', s('rtmp://h/live')) + prop('fpad', b'\x01\x00') + end,
    'publish': s('publish') + n(5) + b'\x05' + s('key') + s('live'),
    'metadata': s('@setDataFrame') + s('onMetaData') + b'\x08' + struct.pack('>I', 2) + prop('width', n(64)) + prop('encoder', s('Lavf')) + end,
    'nested': b'\x0a' + struct.pack('>I', 2) + b'\x03' + prop('a', b'\x0a\x00\x00\x00\x01\x06') + end + b'\x05',
}
for k, v in seeds.items():
    open(f'amf/{k}.bin', 'wb').write(v)
PY

# --- Signed objects and playlists from the protocol test vectors ---
python3 - "$ROOT/tests/vectors" <<'PY'
import json, sys, glob, os
for path in sorted(glob.glob(sys.argv[1] + '/*.json')):
    v = json.load(open(path)); name = os.path.basename(path)[:-5]
    if not isinstance(v, dict):
        continue
    kind = v.get('kind')
    def put(target, suffix, text):
        open(f'{target}/{name}{suffix}', 'w').write(text)
    if kind in ('manifest', 'announce') and 'wire' in v:
        put('signed_objects', '', v['wire'])
        if kind == 'manifest':
            put('playlist', '', v['wire'])
    elif kind == 'chain':
        for i, w in enumerate(v['wires']):
            put('signed_objects', f'-{i}', w)
            put('playlist', f'-{i}', w)
    elif kind == 'canonical':
        put('signed_objects', '', v['input'])
    elif kind == 'inclusion':
        put('signed_objects', '-proof', json.dumps(v['proof'], separators=(',', ':')))
        put('signed_objects', '-entry', json.dumps(v['entry'], separators=(',', ':'), sort_keys=True, ensure_ascii=False))
    elif kind == 'consistency':
        put('signed_objects', '', json.dumps(v['proof'], separators=(',', ':')))
PY
for d in */; do echo "$d $(ls "$d" | wc -l) seeds"; done
