"""The top of docs/BENCHMARKS.md (bench/all.sh runs it after every script has written its
section): the method, the machine and the peers' versions, a summary table of every headline
number with its goal and its ratio to the peer (read back from the sections the scripts wrote),
and SVG plots drawn from the raw samples the scripts saved. Standard library only.

    python3 bench/report.py --doc FILE [--results DIR --plots DIR --svg-ref PREFIX]

Without --results it only rewrites the summary table from the sections already in FILE (whose
numbers may come from different runs). Everything above the first script's section is replaced.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
from plot import cdf_plot, series_plot  # noqa: E402

INTRO = """# Benchmarks

Measured numbers. `bench/all.sh` runs every comparison below one after another on one machine
and rewrites this file: the summary first, then one section per script, each written by the
script it names (rerun that script alone to refresh only its section). Every comparison runs on
loopback, side by side with its reference in the same run, so both see the same load."""


def sh(*cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return r.stdout.strip() or r.stderr.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def section(doc, name):
    b, e = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    return doc[doc.index(b) + len(b): doc.index(e)] if b in doc and e in doc else ""


def row(text, first, exact=False):
    """Cells of the table row whose first cell is (or starts with) `first`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and (cells[0] == first if exact else cells[0].startswith(first)):
            return cells
    return None


def num(s):
    m = re.search(r"-?\d+(?:\.\d+)?", s or "")
    return float(m.group()) if m else None


def fmt(x, unit="", nd=2):
    return "–" if x is None else f"{x:.{nd}f}{unit}"


def ratio(a, b, nd=2, suffix="×"):
    return "–" if a is None or not b else f"{a / b:.{nd}f}{suffix}"


def met(ok):
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def summary_rows(doc):
    """(area, measure, hlswarm, peer, ratio, goal, met) per headline number."""
    out = []
    s = section(doc, "ingest")
    h, n = row(s, "hlswarm", exact=True), row(s, "nginx-rtmp", exact=True)
    if h and n:
        out.append(("Ingest", "CPU s per stream-minute", fmt(num(h[1]), nd=3), f"nginx-rtmp {fmt(num(n[1]), nd=3)}",
                    ratio(num(h[1]), num(n[1])), "≤ 1.0×", met(num(h[1]) <= num(n[1]))))
        out.append(("Ingest", "segment-ready delay p95", fmt(num(h[4]), " ms", 1), f"nginx-rtmp {fmt(num(n[4]), ' ms', 1)}",
                    ratio(num(h[4]), num(n[4])), "≤ 50 ms", met(num(h[4]) <= 50)))
    s = section(doc, "http")
    for label, first, goal in (("media playlist req/s", "media playlist", 1.0), ("~1 MB segment req/s", "segment", 0.9)):
        r = row(s, first)
        if r:
            out.append(("HTTP origin", label, fmt(num(r[1]), nd=0), f"nginx {fmt(num(r[2]), nd=0)}",
                        ratio(num(r[1]), num(r[2])), f"≥ {goal}×", met(num(r[1]) >= goal * num(r[2]))))
    m = re.search(r"peak (\d+) MB", s)
    if m:
        out.append(("HTTP origin", "peak RSS, 1,000 viewers", f"{m.group(1)} MB", "", "", "< 100 MB",
                    met(int(m.group(1)) < 100)))
    s = section(doc, "tracker")
    h, b = row(s, "`hlswarm tracker`"), row(s, "bittorrent-tracker")
    peers = re.search(r"bench/tracker\.sh \d+ (\d+)", s)
    peers = f"{int(peers.group(1)):,} peers" if peers else "simulated peers"
    head = row(s, "tracker", exact=True)
    if h and b and head:
        # Columns by their header: the table has grown columns before.
        ann, cpu, peak = (head.index(c) for c in ("announces/s", "per CPU s", "RSS peak MiB"))
        out.append(("Tracker", f"announces/s, {peers}", fmt(num(h[ann]), nd=0), f"bittorrent-tracker {fmt(num(b[ann]), nd=0)}",
                    ratio(num(h[ann]), num(b[ann]), 1), "≥ 4×", met(num(h[ann]) >= 4 * num(b[ann]))))
        out.append(("Tracker", "announces per tracker CPU s", fmt(num(h[cpu]), nd=0), f"bittorrent-tracker {fmt(num(b[cpu]), nd=0)}",
                    ratio(num(h[cpu]), num(b[cpu]), 1), "", ""))
        out.append(("Tracker", "peak RSS", fmt(num(h[peak]), " MiB", 0), f"bittorrent-tracker {fmt(num(b[peak]), ' MiB', 0)}",
                    ratio(num(h[peak]), num(b[peak])), "", ""))
    s = section(doc, "swarm")
    up, p95 = row(s, "origin upload"), row(s, "delay to all seeders, p95")
    seeders = re.search(r"1 origin \+ (\d+) seeders", s)
    seeders = f"{seeders.group(1)} seeders" if seeders else "seeders"
    if up:
        out.append(("Swarm", f"origin upload / stream bytes, {seeders}", fmt(num(up[1])), f"HTTP fan-out {fmt(num(up[2]))}",
                    ratio(num(up[1]), num(up[2])), "≤ 2", met(num(up[1]) <= 2)))
    if p95:
        out.append(("Swarm", "delay to the last seeder, p95", fmt(num(p95[1]), " ms", 0), f"HTTP fan-out {fmt(num(p95[2]), ' ms', 0)}",
                    ratio(num(p95[1]), num(p95[2])), "≤ 500 ms", met(num(p95[1]) <= 500)))
    s = section(doc, "p2p")
    m = re.search(r"All viewers: \*\*(\d+) %\*\* .*?\(goal (\d+) %\)", s)
    if m:
        out.append(("P2P in the browser", "segment bytes from peers", f"{m.group(1)} %", "", "", f"≥ {m.group(2)} %",
                    met(int(m.group(1)) >= int(m.group(2)))))
    s = section(doc, "moq")
    relay, poll = row(s, "MoQ via moq-relay"), row(s, "HTTP manifest polling, 1000 ms")
    if relay:
        out.append(("MoQ", "signing to verified arrival p95, via moq-relay", fmt(num(relay[3]), " ms", 0),
                    f"HTTP polling 1 s {fmt(num(poll[3]), ' ms', 0)}" if poll else "",
                    ratio(num(relay[3]), num(poll[3]) if poll else None), "≤ 50 ms", met(num(relay[3]) <= 50)))
    s = section(doc, "latency")
    for seg in ("1 s", "2 s"):
        rows = {}
        for line in s.splitlines():
            c = [x.strip() for x in line.strip().strip("|").split("|")]
            if line.startswith("|") and c[0] == seg:
                rows[c[1]] = c
        ll = rows.get("watch page, LL-HLS, every part verified")
        stock = rows.get("stock hls.js, LL-HLS, unverified")
        seed = rows.get("a seeder's watch page, LL-HLS, parts over the swarm, verified")
        if ll:
            out.append(("Latency in the browser", f"LL-HLS, every part verified: behind live (wall) p95, {seg} segments",
                        fmt(num(ll[6]), " s"), f"stock hls.js, unverified {fmt(num(stock[6]), ' s')}" if stock else "",
                        ratio(num(ll[6]), num(stock[6]) if stock else None), "≤ 2.0 s", met(num(ll[6]) <= 2.0)))
        if ll and seed:
            behind = num(seed[5]) - num(ll[5])
            out.append(("Latency in the browser", f"a seeder's viewer behind the origin's (wall p50), {seg} segments",
                        fmt(behind, " s"), "", "", "≤ 0.5 s", met(behind <= 0.5)))
    return out


def versions(root):
    def pkg(path):
        try:
            return json.load(open(os.path.join(root, path)))["version"]
        except (OSError, ValueError, KeyError):
            return "not installed"
    nginx = sh("nginx", "-v") or sh("/usr/sbin/nginx", "-v")
    return [
        ("nginx", nginx.split("/")[-1] if nginx else "not installed"),
        ("nginx-rtmp module (libnginx-mod-rtmp)", sh("dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-rtmp") or "not installed"),
        ("bittorrent-tracker (npm)", pkg("tracker/interop/node_modules/bittorrent-tracker/package.json")),
        ("moq-relay", (sh("moq-relay", "--version") or sh(os.path.expanduser("~/.cargo/bin/moq-relay"), "--version") or "not installed").split()[-1]),
        ("ffmpeg", (sh("ffmpeg", "-version").splitlines() or ["not installed"])[0].replace("ffmpeg version ", "").split(" Copyright")[0]),
        ("Chromium", (sh("/usr/bin/chromium", "--version").split() + ["", "not installed"])[1]),
        ("Node.js", sh("node", "--version") or "not installed"),
        ("wrk", (sh("wrk", "-v").split() + ["?", "not installed"])[1]),
        ("hls.js (web client)", pkg("web-client/node_modules/hls.js/package.json")),
        ("p2p-media-loader-core (web client)", pkg("web-client/node_modules/p2p-media-loader-core/package.json")),
        ("rustc", sh("rustc", "--version").replace("rustc ", "")),
    ]


def machine(results):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    meta = json.load(open(os.path.join(results, "run.json")))
    loads = [float(l.split()[0]) for l in open(os.path.join(results, "load.txt")) if l.strip()]
    return cpu, mem, meta, loads


def header(args, root):
    cpu, mem, meta, loads = machine(args.results)
    busy = meta.get("cpu_busy_percent")
    load = (f"1-minute load average {meta['load_before']} before the run; during it (sampled every 5 s) "
            f"median {statistics.median(loads):.2f}, max {max(loads):.2f}" if loads else "not sampled")
    lines = [
        "## How and where",
        "",
        f"`{meta['command']}` on {meta['date']}, hlswarm at {meta['commit']}; "
        f"{meta['minutes']:.0f} minutes in all.",
        "",
        f"- **Machine:** {cpu}, {os.cpu_count()} cores, {mem / 1048576:.1f} GiB RAM, Linux {os.uname().release}.",
        f"- **Load:** {load}; all cores {busy} % busy over the run (the benchmarks themselves included)."
        if busy is not None else f"- **Load:** {load}.",
        "- **Method:** each script starts hlswarm and its peer on loopback, drives both with the same",
        "  load in the same run (or, for the browser and MoQ numbers, several viewers of one stream at",
        "  the same time) and stops every process it started; its section says exactly what it",
        "  measures. Client and servers share the cores, so absolute numbers are this machine's; the",
        "  ratios are the point. Goals are the project's targets.",
        "- **Peers and tools:** " + "; ".join(f"{k} {v}" for k, v in versions(root)) + ".",
    ]
    return "\n".join(lines)


def plots(args):
    """Write the SVGs the raw data allows; return Markdown image lines."""
    os.makedirs(args.plots, exist_ok=True)
    out = []
    moq = os.path.join(args.results, "moq")
    if os.path.isdir(moq):
        series = []
        for name, label in (("moq-relay", "MoQ via moq-relay"), ("moq-direct", "MoQ from the node"),
                            ("http-100", "HTTP polling, 100 ms"), ("http-1000", "HTTP polling, 1000 ms")):
            p = os.path.join(moq, f"{name}.out")
            if os.path.exists(p):
                d = [int(kv.split("=", 1)[1]) for line in open(p) if line.startswith("segment ")
                     for kv in line.split()[1:] if kv.startswith("delay_ms=")][2:]
                if d:
                    series.append((label, d))
        if series:
            open(os.path.join(args.plots, "moq-delay.svg"), "w").write(cdf_plot(
                "Signing to verified arrival, per segment (bench/moq.sh)", "delay, ms (log scale)", series))
            out.append(f"![MoQ vs HTTP polling: delay distribution]({args.svg_ref}moq-delay.svg)")
    sw = os.path.join(args.results, "swarm.json")
    if os.path.exists(sw):
        r = json.load(open(sw))
        series = []
        for mode, label in (("swarm", "libp2p swarm"), ("http", "plain HTTP fan-out")):
            d = r.get(mode, {}).get("delay_ms_by_seq", {})
            if d:
                series.append((f"{label}", [(int(k), v) for k, v in sorted(d.items(), key=lambda kv: int(kv[0]))]))
        if series:
            n = next(iter(r.values()))["seeders"]
            open(os.path.join(args.plots, "swarm-delay.svg"), "w").write(series_plot(
                f"Signing to the last of {n} seeders holding every blob (bench/swarm.sh)",
                "manifest seq", "delay, ms", series, hline=(500, "goal p95 ≤ 500 ms")))
            out.append(f"![Swarm vs HTTP fan-out: delay to the last seeder per manifest]({args.svg_ref}swarm-delay.svg)")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc", required=True)
    ap.add_argument("--results", help="the run's results directory (run.json, load.txt, raw samples)")
    ap.add_argument("--plots", help="where to write the SVGs")
    ap.add_argument("--svg-ref", default="bench/", help="how the doc refers to the plots directory")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    doc = open(args.doc).read()
    rows = summary_rows(doc)
    parts = []
    if args.results:
        parts += [header(args, root), ""]
    else:
        parts += ["The sections below come from separate runs, each on the machine and date it names;",
                  "`bench/all.sh` runs them all at once and adds the machine and versions here.", ""]
    parts += ["## Summary", "",
              "| area | measure | hlswarm | peer | hlswarm / peer | goal | |",
              "|---|---|---|---|---|---|---|"]
    parts += ["| " + " | ".join(r) + " |" for r in rows]
    if args.results and args.plots:
        imgs = plots(args)
        if imgs:
            parts += [""] + [x for img in imgs for x in (img, "")]
            parts.pop()
    block = "<!-- summary:begin -->\n" + "\n".join(parts) + "\n<!-- summary:end -->"
    # Keep every script's section; replace what comes before the first of them.
    body = doc
    b, e = "<!-- summary:begin -->", "<!-- summary:end -->"
    if b in body and e in body:
        body = body[: body.index(b)] + body[body.index(e) + len(e):]
    first = re.search(r"<!-- [a-z0-9_-]+:begin -->", body)
    rest = body[first.start():] if first else ""
    open(args.doc, "w").write(INTRO + "\n\n" + block + "\n\n" + rest.lstrip("\n"))
    print(f"wrote the summary of {args.doc} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
