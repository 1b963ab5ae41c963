"""The bounded soak behind bench/soak.sh: one `hlswarm run`, a publisher that drops off the
network every DROP seconds the way OBS does (its TCP connection goes silent but stays open, a
half-open connection, and a new publisher with the same key connects at once: a takeover), one
node restart half-way, and the verifying watch page in headless Chromium for the whole time.

Then it checks what a viewer and an archivist would: every rendition's media sequence numbers
run without a gap or a repeat, `hlswarm verify --archive` passes, no EXT-X-ENDLIST was ever
signed before the end, and playback stalled at most once per drop. Prints one JSON object.

    python3 bench/soak.py --bin BIN --work DIR [--minutes 20] [--drop-every 120]

Everything listens on 127.0.0.1; every process it starts is stopped by PID; it ends by itself.
"""
import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

KEY = "soak"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """TCP proxy to the node's RTMP port whose connections can be frozen: no byte moves either
    way and neither side is closed, as when a network drops under a live connection."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.conns = []  # [frozen: asyncio.Event, writers]
        self.port = None
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def handle(self, reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        frozen = asyncio.Event()
        self.conns.append((frozen, writer, up_w))

        async def pump(src, dst):
            try:
                while True:
                    data = await src.read(65536)
                    if not data or frozen.is_set():
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            if not frozen.is_set():
                dst.close()

        try:
            await asyncio.gather(pump(reader, up_w), pump(up_r, writer))
            if frozen.is_set():
                # Half-open: keep both sockets open and silent until the soak ends.
                await asyncio.sleep(10**6)
        except asyncio.CancelledError:
            pass  # the soak is over

    def freeze_all(self):
        for frozen, _, _ in self.conns:
            frozen.set()


def ffmpeg(url: str, seconds: int, log) -> subprocess.Popen:
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-b:v", "800k", "-g", "60", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-f", "flv", url],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)


class Node:
    def __init__(self, args, rtmp: int, http: int):
        self.args, self.rtmp, self.http = args, rtmp, http
        self.proc = None
        self.log_path = os.path.join(args.work, "node.log")

    def start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [self.args.bin, "--data-dir", os.path.join(self.args.work, "data"), "run",
             "--rtmp", f"127.0.0.1:{self.rtmp}", "--http", f"127.0.0.1:{self.http}", "--no-swarm", "--no-moq",
             "--stream-key", KEY, "--segment-seconds", "2"] + self.args.node_arg,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.time() + 60
        while time.time() < deadline:
            text = open(self.log_path).read()
            if text.count("http listening on") > self.starts:
                self.starts += 1
                return re.findall(r"stream id\s+(\S+)", text)[-1]
            if self.proc.poll() is not None:
                sys.exit(f"node exited at start: {text[-2000:]}")
            time.sleep(0.1)
        sys.exit("node did not start within 60 s")

    starts = 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stalls(samples, start_s):
    """Episodes of at least 1 s in which playback did not advance, after it first started:
    [(t_start_s, length_s)] on the soak's clock."""
    out, last_t, last_ct, stuck_since = [], None, None, None
    for t, ct in samples:
        if last_ct is None:
            if ct and ct > 0:
                last_t, last_ct = t, ct
            continue
        if ct is not None and ct > last_ct + 0.05:
            if stuck_since is not None and last_t - stuck_since >= 1.0:
                out.append((stuck_since - start_s, t - stuck_since))
            stuck_since, last_ct = None, ct
        elif stuck_since is None:
            stuck_since = t
        last_t = t
    if stuck_since is not None and last_t - stuck_since >= 1.0:
        out.append((stuck_since - start_s, last_t - stuck_since))
    return out


async def soak(args):
    total = int(args.minutes * 60)
    node = Node(args, free_port(), free_port())
    sid = node.start()
    proxy = Proxy(node.rtmp)
    await proxy.start()
    url = f"rtmp://127.0.0.1:{proxy.port}/live/{KEY}"
    pub_log = open(os.path.join(args.work, "ffmpeg.log"), "a")
    start = time.time()
    events = []
    publishers = [ffmpeg(url, total + 5, pub_log)]
    page = f"http://127.0.0.1:{node.http}/watch/{sid}?ll=0&p2p=0"
    driver_out = open(os.path.join(args.work, "driver.jsonl"), "w")
    driver = subprocess.Popen(
        ["node", "web-client/test/e2e/driver.mjs", "--url", page, "--timeout-s", str(total + 60)],
        stdin=subprocess.PIPE, stdout=driver_out, stderr=subprocess.DEVNULL)
    ended_early = 0
    manifest = os.path.join(args.work, "data", "streams", sid, "manifest.json")
    restart_at = total / 2 + args.drop_every / 2
    restarted = False
    next_drop = args.drop_every
    while (now := time.time() - start) < total:
        if now >= next_drop and now < total - 30:
            next_drop += args.drop_every
            proxy.freeze_all()
            events.append({"t_s": round(now, 1), "event": "drop+takeover"})
            for p in publishers[:-1]:
                p.kill()
            publishers.append(ffmpeg(url, int(total - now) + 5, pub_log))
        elif not restarted and now >= restart_at:
            restarted = True
            events.append({"t_s": round(now, 1), "event": "node restart"})
            node.stop()
            proxy.freeze_all()
            node.start()
            for p in publishers:
                p.kill()
            publishers.append(ffmpeg(url, int(total - now) + 5, pub_log))
        try:
            body = json.load(open(manifest))["body"]
            if all(r.get("ended") for r in body["renditions"]):
                ended_early += 1
        except (OSError, ValueError, KeyError):
            pass
        await asyncio.sleep(1)
    for p in publishers:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
    driver.stdin.close()
    driver.wait(60)
    node.stop()
    return node, sid, start, events, ended_early


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--drop-every", type=float, default=120)
    ap.add_argument("--node-arg", action="append", default=[])
    args = ap.parse_args()
    node, sid, start, events, ended_early = asyncio.run(soak(args))
    data = os.path.join(args.work, "data")
    verify = subprocess.run([args.bin, "--data-dir", data, "verify", data, "--archive"],
                            capture_output=True, text=True)
    log = [json.loads(line) for line in open(os.path.join(data, "streams", sid, "log.jsonl"))]
    by = {}
    for e in log:
        by.setdefault(e["rendition"], []).append(e)
    gaps = repeats = 0
    for entries in by.values():
        seqs = [e["seq"] for e in entries]
        repeats += len(seqs) - len(set(seqs))
        gaps += sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
    media_s = sum(e["dur_us"] for e in by.get("source", [])) / 1e6
    samples = []
    for line in open(os.path.join(args.work, "driver.jsonl")):
        v = json.loads(line)
        s = v.get("stats") or {}
        # driver.mjs's t_ms counts from its own start: the soak's, within a second.
        samples.append((v["t_ms"] / 1000, s.get("currentTime")))
    st = stalls(samples, 0.0)
    # The broadcast ends at about MINUTES (the last publisher stops a few seconds later): a
    # stall that starts in its last 10 s and lasts until the page is closed is the end of the
    # stream, not a stall; it is reported apart.
    end_s = args.minutes * 60
    at_end = [s for s in st if s is st[-1] and s[0] >= end_s - 10]
    st = [s for s in st if s not in at_end]
    drops = [e["t_s"] for e in events]
    per_drop = [sum(1 for t, _ in st if d - 2 <= t <= d + 40) for d in drops]
    outside = [s for s in st if not any(d - 2 <= s[0] <= d + 40 for d in drops)]
    last = json.loads(open(os.path.join(args.work, "driver.jsonl")).readlines()[-1]).get("stats") or {}
    print(json.dumps({
        "minutes": args.minutes, "events": events, "segments": {k: len(v) for k, v in by.items()},
        "seq_gaps": gaps, "seq_repeats": repeats, "media_s": round(media_s, 1),
        "discontinuities": sum(1 for e in by.get("source", []) if e["disc"]),
        "ended_before_the_end_s": ended_early,
        "verify_archive_ok": verify.returncode == 0, "verify_tail": verify.stdout.strip().splitlines()[-3:],
        "stalls": [[round(a, 1), round(b, 1)] for a, b in st], "stalls_per_drop": per_drop,
        "end_of_broadcast_s": [round(a, 1) for a, _ in at_end],
        "stalls_outside_drops": len(outside),
        "page_verified_segments": last.get("verifiedSegments"), "page_segment_failures": last.get("segmentFailures"),
        "page_unverified_loaded": last.get("unverifiedLoaded"), "page_fatal_errors": last.get("fatalErrors"),
    }))


if __name__ == "__main__":
    main()
