//! Records when each segment first appears in a playlist or signed manifest. inotify (through
//! notify) reports the rename that publishes the file; the file is read at once and every
//! segment not seen before is stamped with the time of that event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use notify::{EventKind, RecursiveMode, Watcher};

/// What to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An HLS media playlist (`#EXT-X-MEDIA-SEQUENCE`, `#EXTINF`).
    M3u8,
    /// hlswarm's signed `manifest.json` (first rendition's window).
    Manifest,
}

/// Sequence number -> (duration in microseconds, first seen).
pub type Seen = Arc<Mutex<BTreeMap<u64, (u64, Instant)>>>;

pub struct PlaylistWatch {
    pub seen: Seen,
    _watcher: notify::RecommendedWatcher,
}

impl PlaylistWatch {
    /// Watches `file` (its directory must exist).
    pub fn start(file: PathBuf, kind: Kind) -> Result<Self, String> {
        let seen: Seen = Arc::default();
        let dir = file.parent().ok_or("playlist path has no directory")?.to_path_buf();
        let name = file.file_name().ok_or("playlist path has no file name")?.to_owned();
        let record = Arc::clone(&seen);
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let now = Instant::now();
            let Ok(ev) = ev else { return };
            // Only writes and renames: reading the file ourselves raises access events, and
            // reacting to those would read it again, forever.
            let written = matches!(ev.kind, EventKind::Create(_) | EventKind::Modify(_));
            if written && ev.paths.iter().any(|p| p.file_name() == Some(&name)) {
                update(&file, kind, now, &record);
            }
        })
        .map_err(|e| e.to_string())?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("watch {}: {e}", dir.display()))?;
        Ok(Self {
            seen,
            _watcher: watcher,
        })
    }
}

fn update(file: &Path, kind: Kind, now: Instant, seen: &Seen) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let segments = match kind {
        Kind::M3u8 => parse_m3u8(&text),
        Kind::Manifest => parse_manifest(&text),
    };
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    for (seq, dur) in segments {
        seen.entry(seq).or_insert((dur, now));
    }
}

fn parse_m3u8(text: &str) -> Vec<(u64, u64)> {
    let mut seq = 0;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let secs: f64 = v.split(',').next().unwrap_or("0").trim().parse().unwrap_or(0.0);
            out.push((seq, (secs * 1e6).round() as u64));
            seq += 1;
        }
    }
    out
}

fn parse_manifest(text: &str) -> Vec<(u64, u64)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    v["renditions"][0]["segments"]
        .as_array()
        .map(|segs| {
            segs.iter()
                .filter_map(|s| Some((s["seq"].as_u64()?, s["dur_us"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both() {
        let m = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:4\n#EXTINF:2.000,\na-4.ts\n#EXTINF:1.967,\na-5.ts\n";
        assert_eq!(parse_m3u8(m), [(4, 2_000_000), (5, 1_967_000)]);
        let j = r#"{"renditions":[{"segments":[{"seq":7,"dur_us":2000000}]}]}"#;
        assert_eq!(parse_manifest(j), [(7, 2_000_000)]);
    }
}
