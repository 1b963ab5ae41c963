"""Swarm distribution bench, driven by bench/swarm.sh: one origin (`hlswarm run`, a pre-encoded
file pushed over RTMP in real time) and N `hlswarm seed` processes on loopback, run twice in one
go: through the libp2p swarm, then as plain HTTP mirrors of the origin (`--no-swarm`), the
fan-out a CDN-less origin would face. Prints the Markdown section for docs/BENCHMARKS.md.

Measures, per mode: origin upload (segment bytes out, all transports) / stream bytes; delay from
signing a manifest to the moment its blobs are verified and stored on the LAST seeder (p50/p95
over manifests, from the seeders' "replicated MANIFEST_ROOT" log lines); CPU seconds and peak
RSS of the origin and of the seeders.
"""
import argparse
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import threading
import time
import urllib.request

LINE = re.compile(r"replicated MANIFEST_ROOT.*?seq=(\d+).*?delay_ms=(\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TICKS = os.sysconf("SC_CLK_TCK")
LOOPBACK = ["--p2p", "/ip4/127.0.0.1/tcp/0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1", "--no-mdns", "--no-moq"]


class Proc:
    def __init__(self, args, log_path):
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.http = None
        self.stream = None
        self.rtmp = None

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_ready(self, want_rtmp, limit=60):
        end = time.time() + limit
        while self.http is None or (want_rtmp and self.rtmp is None):
            line = self.lines.get(timeout=max(0.1, end - time.time()))
            if line.startswith("http listening on "):
                self.http = "http://" + line.split()[-1]
            elif line.startswith("rtmp listening on "):
                self.rtmp = line.split()[-1]
            elif line.strip().startswith(("stream id", "seeding")):
                self.stream = self.stream or line.split()[-1]

    def usage(self):
        """(CPU seconds, peak RSS MiB) of the process so far."""
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS
        rss = 0
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1]) / 1024
        return cpu, rss

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def metric(base, prefix):
    text = get(base + "/metrics").decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(prefix))


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def run_mode(args, mode, media):
    work = os.path.join(args.work, mode)
    os.makedirs(work)
    extra = LOOPBACK if mode == "swarm" else ["--no-swarm", "--no-moq"]
    origin = Proc(
        [args.bin, "--data-dir", f"{work}/origin", "run", "--rtmp", "127.0.0.1:0", "--http", "127.0.0.1:0",
         "--stream-key", "bench", "--segment-seconds", "1", *extra],
        f"{work}/origin.log",
    )
    procs = [origin]
    try:
        origin.wait_ready(True)
        watch = f"{origin.http}/watch/{origin.stream}"
        seeders = []
        for i in range(args.seeders):
            s = Proc([args.bin, "--data-dir", f"{work}/s{i}", "seed", watch, "--http", "127.0.0.1:0", *extra],
                     f"{work}/s{i}.log")
            procs.append(s)
            seeders.append(s)
        for s in seeders:
            s.wait_ready(False)
        push = subprocess.run(
            ["ffmpeg", "-v", "error", "-nostdin", "-re", "-i", media, "-c", "copy", "-f", "flv",
             f"rtmp://{origin.rtmp}/live/bench"],
            timeout=args.seconds + 60,
        )
        assert push.returncode == 0, "ffmpeg push failed"
        final = None
        end = time.time() + 30
        while time.time() < end:
            m = get(f"{origin.http}/streams/{origin.stream}/manifest.json")
            if b'"ended":true' in m and b'"ended":false' not in m:
                final = m
                break
            time.sleep(0.2)
        assert final, "origin did not sign the end"
        end = time.time() + 90
        for s in seeders:
            while get(f"{s.http}/streams/{origin.stream}/manifest.json") != final:
                assert time.time() < end, f"seeder {s.log_path} did not converge"
                time.sleep(0.2)
        seg_dir = f"{work}/origin/streams/{origin.stream}/seg"
        stream_bytes = sum(os.path.getsize(os.path.join(seg_dir, f)) for f in os.listdir(seg_dir))
        up = metric(origin.http, 'hlswarm_bytes_out_total{transport="libp2p"')
        up += metric(origin.http, 'hlswarm_bytes_out_total{transport="http",route="segment"')
        up += metric(origin.http, 'hlswarm_bytes_out_total{transport="http",route="init"')
        usage = [p.usage() for p in procs]
    finally:
        for p in procs:
            p.stop()
    # Delay to the last seeder, per manifest seq.
    per_seq = {}
    for s in seeders:
        with open(s.log_path) as f:
            for line in f:
                m = LINE.search(ANSI.sub("", line))
                if m:
                    seq, d = int(m.group(1)), int(m.group(2))
                    per_seq.setdefault(seq, []).append(d)
    # Only manifests every seeder served (a seeder that lagged skips straight to a newer one).
    full = [max(v) for v in per_seq.values() if len(v) == len(seeders)]
    seed_cpu = [u[0] for u in usage[1:]]
    seed_rss = [u[1] for u in usage[1:]]
    return {
        "ratio": up / stream_bytes,
        "stream_mb": stream_bytes / 1e6,
        "p50": pct(full, 50),
        "p95": pct(full, 95),
        "manifests": len(full),
        "origin_cpu": usage[0][0],
        "origin_rss": usage[0][1],
        "seed_cpu": statistics.median(seed_cpu),
        "seed_rss": statistics.median(seed_rss),
        "seed_rss_max": max(seed_rss),
        "delays": {str(seq): max(v) for seq, v in sorted(per_seq.items()) if len(v) == len(seeders)},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--seeders", type=int, default=10)
    ap.add_argument("--work", required=True)
    ap.add_argument("--raw", help="also write each mode's per-manifest delays to the last seeder (JSON)")
    args = ap.parse_args()
    media = os.path.join(args.work, "push.flv")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(args.seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2500k", "-g", "30", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-f", "flv", media],
        check=True,
    )
    load = open("/proc/loadavg").read().split()[0]
    res = {mode: run_mode(args, mode, media) for mode in ("swarm", "http")}
    s, h = res["swarm"], res["http"]
    if args.raw:
        os.makedirs(os.path.dirname(os.path.abspath(args.raw)), exist_ok=True)
        with open(args.raw, "w") as f:
            json.dump({mode: {"seeders": args.seeders, "delay_ms_by_seq": r["delays"]} for mode, r in res.items()}, f)
    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    print(f"""## Swarm distribution: 1 origin + {args.seeders} seeders (`bench/swarm.sh {args.seconds}`)

Machine: {os.cpu_count()} cores ({model.group(1) if model else "unknown CPU"}), all processes on loopback;
load average {load} when the run started (other work on the machine inflates the delays).
A {args.seconds} s 720p stream at ~2.5 Mb/s, 1 s segments ({s['stream_mb']:.1f} MB of segments), pushed
pre-encoded over RTMP in real time. The same {args.seeders} `hlswarm seed` processes run twice: through the
libp2p swarm, and as plain HTTP mirrors of the origin (`--no-swarm`: each polls the origin's
manifest every 500 ms and fetches what is new from it).
Delay: from signing a MANIFEST_ROOT to its last seeder having every blob verified and stored
(over the {s['manifests']} manifests every seeder served).

| | swarm | plain HTTP fan-out | goal |
|---|---|---|---|
| origin upload / stream bytes | {s['ratio']:.2f} | {h['ratio']:.2f} | ≤ 2 (swarm) |
| delay to all seeders, p50 | {s['p50']:.0f} ms | {h['p50']:.0f} ms | |
| delay to all seeders, p95 | {s['p95']:.0f} ms | {h['p95']:.0f} ms | ≤ 500 ms |
| origin CPU | {s['origin_cpu']:.1f} s | {h['origin_cpu']:.1f} s | |
| origin peak RSS | {s['origin_rss']:.0f} MiB | {h['origin_rss']:.0f} MiB | |
| seeder CPU, median | {s['seed_cpu']:.1f} s | {h['seed_cpu']:.1f} s | |
| seeder peak RSS, median (max) | {s['seed_rss']:.0f} ({s['seed_rss_max']:.0f}) MiB | {h['seed_rss']:.0f} ({h['seed_rss_max']:.0f}) MiB | |
""")


if __name__ == "__main__":
    main()
