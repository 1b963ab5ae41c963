//! `ingest-bench`: publishes one pre-encoded FLV at real-time pace to several RTMP servers at
//! once (the same tags to each, in rotating order) and measures, per server:
//! - CPU seconds (utime + stime of the given PIDs, from /proc) over the publish;
//! - segment-ready delay: when a segment first appears in the server's playlist (inotify on the
//!   rename that publishes it) minus when the keyframe that closed it was fully written to that
//!   server's socket. A segment ends where the next keyframe begins, for every server alike; the
//!   closing keyframe is found from the playlist's cumulative durations;
//! - how busy the whole machine was meanwhile (/proc/stat), to read delays against.
//!
//! ```text
//! ingest-bench --flv in.flv --out result.json --clk-tck 100 --tail 4 \
//!   --target 'name=nginx-rtmp,url=rtmp://127.0.0.1:1935/live/bench,watch=m3u8:/x/hls/bench.m3u8,pids=10:11'
//! ```
//! bench/ingest.sh drives it.

mod flv;
mod load;
mod publisher;
mod watch;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use publisher::Publisher;
use watch::{Kind, PlaylistWatch};

struct Target {
    name: String,
    url: String,
    kind: Kind,
    file: PathBuf,
    pids: Vec<u32>,
}

struct Args {
    flv: PathBuf,
    out: PathBuf,
    clk_tck: f64,
    tail: Duration,
    targets: Vec<Target>,
}

fn parse_args() -> Result<Args, String> {
    let mut flv = None;
    let mut out = None;
    let mut clk_tck = 100.0;
    let mut tail = Duration::from_secs(4);
    let mut targets = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--flv" => flv = Some(PathBuf::from(val()?)),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--clk-tck" => clk_tck = val()?.parse().map_err(|_| "bad --clk-tck")?,
            "--tail" => tail = Duration::from_secs(val()?.parse().map_err(|_| "bad --tail")?),
            "--target" => {
                let spec = val()?;
                let get = |k: &str| {
                    spec.split(',')
                        .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                        .map(str::to_owned)
                        .ok_or(format!("--target needs {k}="))
                };
                let watch = get("watch")?;
                let (kind, file) = watch.split_once(':').ok_or("watch=KIND:PATH")?;
                targets.push(Target {
                    name: get("name")?,
                    url: get("url")?,
                    kind: match kind {
                        "m3u8" => Kind::M3u8,
                        "manifest" => Kind::Manifest,
                        k => return Err(format!("unknown watch kind {k}")),
                    },
                    file: PathBuf::from(file),
                    pids: get("pids")?
                        .split(':')
                        .filter(|p| !p.is_empty())
                        .map(|p| p.parse().map_err(|_| format!("bad pid {p}")))
                        .collect::<Result<_, _>>()?,
                });
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(Args {
        flv: flv.ok_or("--flv is required")?,
        out: out.ok_or("--out is required")?,
        clk_tck,
        tail,
        targets,
    })
}

/// utime + stime of `pid` in clock ticks (all its threads).
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("pid {pid}: {e}"))?;
    let fields: Vec<&str> = stat.rsplit_once(')').ok_or("bad stat")?.1.split_whitespace().collect();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or("bad stat field")
    };
    Ok(num(11)? + num(12)?)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ingest-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let data = std::fs::read(&args.flv).map_err(|e| format!("{}: {e}", args.flv.display()))?;
    let tags = flv::read(&data)?;
    let keyframes: Vec<u32> = tags.iter().filter(|t| t.is_keyframe()).map(|t| t.ts).collect();
    let first_ts = tags.iter().map(|t| t.ts).min().unwrap_or(0);
    let last_ts = tags.iter().map(|t| t.ts).max().unwrap_or(0);
    if keyframes.len() < 3 {
        return Err("the FLV needs at least 3 keyframes".into());
    }

    let watches: Vec<PlaylistWatch> = args
        .targets
        .iter()
        .map(|t| PlaylistWatch::start(t.file.clone(), t.kind))
        .collect::<Result<_, _>>()?;
    let mut pubs: Vec<Publisher> = args
        .targets
        .iter()
        .map(|t| Publisher::connect(&t.url).map_err(|e| format!("{}: {e}", t.name)))
        .collect::<Result<_, _>>()?;
    for p in &mut pubs {
        p.metadata(1280, 720, 30.0)?;
    }

    let n = pubs.len();
    let load = load::LoadSampler::start(Duration::from_millis(250));
    let cpu0: Vec<u64> = args
        .targets
        .iter()
        .map(|t| t.pids.iter().map(|&p| cpu_ticks(p)).sum::<Result<u64, _>>())
        .collect::<Result<_, _>>()?;
    // sent[target][k]: when keyframe k was fully written to that target.
    let mut sent: Vec<Vec<Instant>> = vec![Vec::with_capacity(keyframes.len()); n];
    let start = Instant::now();
    for (i, tag) in tags.iter().enumerate() {
        let due = start + Duration::from_millis(u64::from(tag.ts - first_ts));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for j in 0..n {
            let k = (i + j) % n;
            pubs[k].tag(tag.kind, tag.ts, &tag.body)?;
            if tag.is_keyframe() {
                sent[k].push(Instant::now());
            }
        }
        for p in &mut pubs {
            p.poll()?;
        }
    }
    let publish_wall = start.elapsed();
    // Segments closed by the last keyframes are listed within the tail; the one still open at
    // the end (closed by the unpublish) is not counted.
    let tail_end = Instant::now() + args.tail;
    while Instant::now() < tail_end {
        for p in &mut pubs {
            p.poll()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu1: Vec<u64> = args
        .targets
        .iter()
        .map(|t| t.pids.iter().map(|&p| cpu_ticks(p)).sum::<Result<u64, _>>())
        .collect::<Result<_, _>>()?;
    drop(pubs);

    let stream_s = f64::from(last_ts - first_ts) / 1000.0;
    let kf0 = keyframes[0];
    let mut results = Vec::new();
    for (ti, t) in args.targets.iter().enumerate() {
        let seen = watches[ti].seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut delays = Vec::new();
        let mut unmatched = 0;
        let mut cum_us = 0u64;
        let mut durations = Vec::new();
        for (&seq, &(dur, listed)) in &seen {
            cum_us += dur;
            durations.push(dur as f64 / 1e6);
            let end_ms = i64::from(kf0) + (cum_us / 1000) as i64;
            let nearest = keyframes
                .iter()
                .enumerate()
                .min_by_key(|&(_, &ts)| (i64::from(ts) - end_ms).abs())
                .filter(|&(_, &ts)| (i64::from(ts) - end_ms).abs() <= 100);
            match nearest.and_then(|(k, _)| sent[ti].get(k)) {
                Some(&s) => {
                    let d = listed.checked_duration_since(s).map_or_else(
                        || -(s.duration_since(listed).as_secs_f64() * 1e3),
                        |d| d.as_secs_f64() * 1e3,
                    );
                    let busy = load.max_between(s.min(listed), listed.max(s));
                    delays.push((seq, d, busy));
                }
                None => unmatched += 1,
            }
        }
        let mut sorted: Vec<f64> = delays.iter().map(|&(_, d, _)| d).collect();
        sorted.sort_by(f64::total_cmp);
        let cpu_s = (cpu1[ti] - cpu0[ti]) as f64 / args.clk_tck;
        let r = json!({
            "name": t.name,
            "cpu_seconds": cpu_s,
            "cpu_seconds_per_stream_minute": cpu_s / (stream_s / 60.0),
            "segments_listed": seen.len(),
            "segments_matched": delays.len(),
            "segments_unmatched": unmatched,
            "duration_min_s": durations.iter().copied().fold(f64::INFINITY, f64::min),
            "duration_max_s": durations.iter().copied().fold(0.0, f64::max),
            "delay_ms_median": percentile(&sorted, 50.0),
            "delay_ms_p95": percentile(&sorted, 95.0),
            "delay_ms_min": sorted.first(),
            "delay_ms_max": sorted.last(),
            // [segment, delay ms, machine busy % around it]
            "delays_ms": delays
                .iter()
                .map(|&(s, d, b)| json!([s, (d * 1000.0).round() / 1000.0, b.map(|b| (b * 100.0).round())]))
                .collect::<Vec<_>>(),
        });
        eprintln!(
            "{:<16} cpu {:.3} s ({:.3} s per stream-minute)  delay median {:.1} ms p95 {:.1} ms  ({} segments, {} unmatched)",
            t.name,
            cpu_s,
            cpu_s / (stream_s / 60.0),
            percentile(&sorted, 50.0),
            percentile(&sorted, 95.0),
            delays.len(),
            unmatched
        );
        results.push(r);
    }
    let out = json!({
        "stream_seconds": stream_s,
        "publish_wall_seconds": publish_wall.as_secs_f64(),
        "keyframes": keyframes.len(),
        "machine_busy_mean_pct": load.mean().map(|b| (b * 1000.0).round() / 10.0),
        "targets": results,
    });
    std::fs::write(&args.out, serde_json::to_vec_pretty(&out).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{}: {e}", args.out.display()))
}
