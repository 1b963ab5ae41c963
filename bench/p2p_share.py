"""P2P share of segment bytes with N viewers (bench/p2p.sh runs it): opens N watch pages in
separate headless Chromium processes (web-client/test/e2e/driver.mjs), each once the previous one
plays, and measures over a window that starts WARM seconds after the first viewer began playing:
the share of verified segment bytes that came from peers (all viewers together, and per
viewer), each viewer's latency behind live (hls.js) and role. Prints one JSON object.

    python3 bench/p2p_share.py URL N WARM SPAN
"""
import json
import subprocess
import sys
import threading
import time

DRIVER = "web-client/test/e2e/driver.mjs"


class Viewer:
    def __init__(self, url, timeout_s):
        self.p = subprocess.Popen(["node", DRIVER, "--url", url, "--timeout-s", str(timeout_s)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.last = {}
        self.samples = []  # (t, stats)
        self.lock = threading.Lock()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.p.stdout:
            v = json.loads(line)
            if "error" in v:
                print(f"driver failed: {v}", file=sys.stderr)
                continue
            s = v.get("stats")
            if s:
                with self.lock:
                    self.last = s
                    self.samples.append((time.monotonic(), s))

    def stats(self):
        with self.lock:
            return dict(self.last)

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.p.kill()


def wait_until(v, cond, limit, what):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond(v.stats()):
            return
        time.sleep(0.25)
    raise SystemExit(f"timed out waiting for {what}: {v.stats()}")


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None


def main():
    url, n, warm, span = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    total = warm + span + 30 * n + 60
    viewers = []
    try:
        first_play = None
        for i in range(n):
            viewers.append(Viewer(url, total))
            wait_until(viewers[-1], lambda s: s.get("verifiedSegments", 0) >= 3 and s.get("currentTime", 0) > 0,
                       60, f"viewer {i + 1} to play")
            first_play = first_play or time.monotonic()
        start = first_play + warm
        if time.monotonic() > start:
            raise SystemExit("the viewers took longer than WARM to start")
        time.sleep(start - time.monotonic())
        at_start = [v.stats() for v in viewers]
        time.sleep(span)
        at_end = [v.stats() for v in viewers]
        per = []
        for i, (v, a, b) in enumerate(zip(viewers, at_start, at_end)):
            http = b["bytesHttp"] - a["bytesHttp"]
            p2p = b["bytesP2p"] - a["bytesP2p"]
            with v.lock:
                lat = [s["latency"] for t, s in v.samples if start <= t <= start + span and s.get("latency") is not None]
                roles = sorted({s.get("p2pRole") for t, s in v.samples if start <= t <= start + span})
            per.append({
                "viewer": i + 1, "http": http, "p2p": p2p, "share": p2p / max(http + p2p, 1),
                "roles": roles, "latency_p50": q(lat, 0.5), "latency_p95": q(lat, 0.95),
                "peers": b.get("peers"), "uploaded": b["bytesUploaded"] - a["bytesUploaded"],
                "segment_failures": b.get("segmentFailures"), "p2p_rejected": b.get("p2pRejected"),
                "unverified_loaded": b.get("unverifiedLoaded"), "fatal_errors": b.get("fatalErrors"),
                "verified_segments": b.get("verifiedSegments"),
            })
        http = sum(p["http"] for p in per)
        p2p = sum(p["p2p"] for p in per)
        print(json.dumps({"viewers": n, "warm_s": warm, "span_s": span, "http": http, "p2p": p2p,
                          "share": p2p / max(http + p2p, 1), "optimum": (n - 1) / n,
                          "goal": 0.8 * (n - 1) / n, "per_viewer": per}))
    finally:
        for v in viewers:
            v.close()


if __name__ == "__main__":
    main()
