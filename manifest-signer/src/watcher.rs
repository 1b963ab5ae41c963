//! Signs the HLS output of any packager (this project's ingest, `ffmpeg -f hls`, nginx-rtmp's
//! `hls_path`, MediaMTX) by watching its directory.
//!
//! A segment counts as complete when the packager lists it in a media playlist: packagers list a
//! segment only after closing it, so a partially written file is never signed. Each scan reads
//! the playlists, takes the segments listed after the last one signed, hashes and stores them
//! and signs one new MANIFEST_ROOT for the batch. File-system events trigger scans; a periodic
//! rescan covers lost events. Old segments deleted by the packager are already in the store.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use m3u8_rs::{MediaPlaylist, Playlist};
use notify::{RecursiveMode, Watcher as _};

use crate::idle_end::IdleEnd;
use crate::objects::{Container, ManifestRoot, Signed, limits};
use crate::signer::{NewSegment, RenditionInfo, StreamSigner};
use crate::{Error, Hash, Result, now_ms};

/// Largest playlist read.
const MAX_PLAYLIST_BYTES: u64 = 1024 * 1024;
/// Source segments remembered per rendition to recognise what was signed already.
const REMEMBERED: usize = 64;

/// What a packager file looked like when it was signed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SourceKey {
    uri: String,
    len: u64,
    mtime_ns: u128,
}

#[derive(Debug, Default)]
struct Track {
    last: Option<SourceKey>,
    seen: VecDeque<SourceKey>,
    init: Option<(SourceKey, Arc<[u8]>)>,
    warned_byte_range: bool,
}

/// Watches one packager output directory and signs what appears there.
#[derive(Debug)]
pub struct DirWatcher {
    dir: PathBuf,
    signer: StreamSigner,
    tracks: BTreeMap<String, Track>,
    /// Fixed rendition name when the directory holds one media playlist.
    single_name: String,
    /// End the stream after this long with no new segment (packagers that write no ENDLIST).
    idle_end: Option<Duration>,
}

/// Messages to a running watcher.
#[derive(Debug)]
pub enum Control {
    /// Something changed on disk: scan.
    Changed,
    /// Finish: scan once more and return.
    Stop,
}

impl DirWatcher {
    pub fn new(dir: PathBuf, signer: StreamSigner) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Watch {
                path: dir,
                reason: "not a directory".into(),
            });
        }
        let dir = dir.canonicalize().map_err(Error::io("resolve", &dir))?;
        let store = signer
            .store()
            .dir()
            .canonicalize()
            .map_err(Error::io("resolve", signer.store().dir()))?;
        if store.starts_with(&dir) || dir.starts_with(&store) {
            return Err(Error::Watch {
                path: dir,
                reason: "the watched directory overlaps the signer's own store".into(),
            });
        }
        Ok(DirWatcher {
            dir,
            signer,
            tracks: BTreeMap::new(),
            single_name: "source".into(),
            idle_end: None,
        })
    }

    /// Name the rendition of a single-playlist directory (default `source`).
    pub fn with_rendition_name(mut self, name: &str) -> Result<Self> {
        crate::objects::check_rendition_name(name)?;
        self.single_name = name.to_string();
        Ok(self)
    }

    /// Sign the end of the stream (EXT-X-ENDLIST) once `idle` passes with no new segment, for
    /// packagers that never write ENDLIST (nginx-rtmp). A later segment reopens it. Only
    /// [`DirWatcher::run`] keeps this clock; `scan` alone never ends for idleness.
    pub fn with_idle_end(mut self, idle: Duration) -> Self {
        self.idle_end = Some(idle);
        self
    }

    pub fn signer(&self) -> &StreamSigner {
        &self.signer
    }

    pub fn into_signer(self) -> StreamSigner {
        self.signer
    }

    /// Run until `Control::Stop` arrives (or every sender is gone), calling `on_manifest` for
    /// every manifest signed. Events come from `notify`; `rescan` is the fallback period.
    pub fn run(
        &mut self,
        control_tx: mpsc::SyncSender<Control>,
        control: mpsc::Receiver<Control>,
        rescan: Duration,
        mut on_manifest: impl FnMut(&mut StreamSigner, &Signed<ManifestRoot>),
    ) -> Result<()> {
        let tx = control_tx;
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok() {
                // A full channel already holds a pending scan: dropping this event loses nothing.
                let _ = tx.try_send(Control::Changed);
            }
        })
        .map_err(|e| Error::Watch {
            path: self.dir.clone(),
            reason: e.to_string(),
        })?;
        watcher
            .watch(&self.dir, RecursiveMode::Recursive)
            .map_err(|e| Error::Watch {
                path: self.dir.clone(),
                reason: e.to_string(),
            })?;
        tracing::info!(dir = %self.dir.display(), stream = %self.signer.stream_id(), "watching packager output");
        let open = self
            .signer
            .latest()
            .is_some_and(|m| m.body.renditions.iter().any(|r| !r.ended && !r.segments.is_empty()));
        let mut idle = IdleEnd::new(self.idle_end, open, Instant::now());
        loop {
            let wait = idle
                .deadline()
                .map_or(rescan, |d| d.saturating_duration_since(Instant::now()).min(rescan));
            let stop = match control.recv_timeout(wait) {
                Ok(Control::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
                Ok(Control::Changed) | Err(mpsc::RecvTimeoutError::Timeout) => false,
            };
            // Coalesce a burst of events into one scan.
            let mut stop = stop;
            while let Ok(msg) = control.try_recv() {
                stop |= matches!(msg, Control::Stop);
            }
            let scanned = match self.scan() {
                Ok(None) if idle.due(Instant::now()) => {
                    // Handled once, whether or not there is anything to end.
                    idle.on_signed(true, Instant::now());
                    tracing::info!(
                        idle_s = self.idle_end.unwrap_or_default().as_secs(),
                        "no new segment for the idle time: signing the end of the stream"
                    );
                    self.signer.end()
                }
                other => other,
            };
            match scanned {
                Ok(Some(m)) => {
                    idle.on_signed(m.body.renditions.iter().all(|r| r.ended), Instant::now());
                    on_manifest(&mut self.signer, &m)
                }
                Ok(None) => {}
                Err(e) if e.is_verification_failure() => {
                    tracing::warn!(error = %e, "skipping packager output")
                }
                Err(e) => return Err(e),
            }
            if stop {
                return Ok(());
            }
        }
    }

    /// Scan the directory once; sign a manifest if anything new is complete.
    pub fn scan(&mut self) -> Result<Option<Signed<ManifestRoot>>> {
        let playlists = self.read_playlists()?;
        let single = playlists.len() == 1;
        let mut batch = Vec::new();
        let mut updates = Vec::new();
        let mut all_ended = !playlists.is_empty();
        for (rel, (pl, info)) in &playlists {
            let name = if single {
                self.single_name.clone()
            } else {
                rendition_name(rel)
            };
            let base = self
                .dir
                .join(rel)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.dir.clone());
            let track = self.tracks.entry(name.clone()).or_default();
            // After a restart nothing is remembered: skip what the signed window already holds.
            let known: HashSet<Hash> = match (&track.last, self.signer.latest()) {
                (None, Some(m)) => m
                    .body
                    .rendition(&name)
                    .map(|r| r.segments.iter().map(|s| s.hash).collect())
                    .unwrap_or_default(),
                _ => HashSet::new(),
            };
            let (segs, update) = collect_new(&self.dir, &base, &name, pl, info, track, &known)?;
            all_ended &= pl.end_list && segs.is_empty();
            batch.extend(segs);
            updates.push((name, update));
        }
        let signed = if !batch.is_empty() {
            let n = batch.len();
            let m = self.signer.publish(batch)?;
            tracing::debug!(segments = n, seq = m.body.seq, "signed manifest");
            Some(m)
        } else if all_ended {
            self.signer.end()?
        } else {
            None
        };
        for (name, update) in updates {
            if let Some(track) = self.tracks.get_mut(&name) {
                update.apply(track);
            }
        }
        Ok(signed)
    }

    fn read_playlists(&self) -> Result<BTreeMap<String, (MediaPlaylist, RenditionInfo)>> {
        let mut files = Vec::new();
        list_playlists(&self.dir, &self.dir, 0, &mut files);
        let mut media = BTreeMap::new();
        let mut infos: HashMap<String, RenditionInfo> = HashMap::new();
        for rel in files {
            let path = self.dir.join(&rel);
            let Ok(bytes) = read_bounded(&path, MAX_PLAYLIST_BYTES) else {
                continue;
            };
            match m3u8_rs::parse_playlist_res(&bytes) {
                Ok(Playlist::MediaPlaylist(pl)) if !pl.i_frames_only => {
                    media.insert(rel, pl);
                }
                Ok(Playlist::MasterPlaylist(master)) => {
                    let base = Path::new(&rel).parent().map(Path::to_path_buf).unwrap_or_default();
                    for v in master.variants.iter().filter(|v| !v.is_i_frame) {
                        let info = RenditionInfo {
                            codecs: v
                                .codecs
                                .clone()
                                .filter(|c| c.len() <= limits::MAX_CODECS_BYTES && !c.contains('"')),
                            resolution: v.resolution.map(|r| format!("{}x{}", r.width, r.height)),
                            frame_rate_milli: v.frame_rate.map(|f| (f * 1000.0).round() as u64),
                            // Packagers declare BANDWIDTH their own way (a configured
                            // nominal rate, one segment's peak): the signer measures it from
                            // the segments it signs instead (crate::bandwidth).
                            bandwidth: None,
                            target_duration: None,
                            // Variants only: EXT-X-MEDIA renditions are not read as audio (1.4).
                            kind: None,
                            channels: None,
                            // No parts: the watcher signs whole segments only.
                            part_target_us: None,
                        };
                        infos.insert(base.join(&v.uri).to_string_lossy().into_owned(), info);
                    }
                }
                // Mid-write or foreign: the next event or rescan reads it again.
                _ => tracing::trace!(playlist = %rel, "unparsable playlist, will retry"),
            }
        }
        Ok(media
            .into_iter()
            .map(|(rel, pl)| {
                let mut info = infos.remove(&rel).unwrap_or_default();
                info.target_duration = Some(pl.target_duration);
                (rel, (pl, info))
            })
            .collect())
    }
}

/// What a scan learned about a track, applied once the batch is signed.
struct TrackUpdate {
    last: Option<SourceKey>,
    seen: Vec<SourceKey>,
    init: Option<(SourceKey, Arc<[u8]>)>,
    byte_range_warned: bool,
}

impl TrackUpdate {
    fn apply(self, track: &mut Track) {
        if self.last.is_some() {
            track.last = self.last;
        }
        for k in self.seen {
            track.seen.push_back(k);
        }
        while track.seen.len() > REMEMBERED {
            track.seen.pop_front();
        }
        if self.init.is_some() {
            track.init = self.init;
        }
        track.warned_byte_range |= self.byte_range_warned;
    }
}

fn collect_new(
    root: &Path,
    base: &Path,
    name: &str,
    pl: &MediaPlaylist,
    info: &RenditionInfo,
    track: &Track,
    known: &HashSet<Hash>,
) -> Result<(Vec<NewSegment>, TrackUpdate)> {
    let mut update = TrackUpdate {
        last: None,
        seen: Vec::new(),
        init: None,
        byte_range_warned: false,
    };
    let mut keys = Vec::with_capacity(pl.segments.len());
    for s in &pl.segments {
        keys.push(resolve(root, base, &s.uri).and_then(|p| source_key(&s.uri, &p).map(|k| (p, k))));
    }
    let start = match &track.last {
        None => 0,
        Some(last) => match keys.iter().position(|k| k.as_ref().is_some_and(|(_, k)| k == last)) {
            Some(i) => i + 1,
            // Not listed any more (we fell behind, or the packager restarted): take what we have not seen.
            None => keys
                .iter()
                .rposition(|k| k.as_ref().is_some_and(|(_, k)| track.seen.contains(k)))
                .map_or(0, |i| i + 1),
        },
    };
    let lost_track = track.last.is_some()
        && keys
            .iter()
            .all(|k| k.as_ref().is_none_or(|(_, k)| Some(k) != track.last.as_ref()));
    let mut out = Vec::new();
    let mut init_cache = track.init.clone();
    // EXT-X-MAP applies to every following segment until the next one; m3u8-rs attaches it
    // only to the segment it precedes.
    let mut map = None;
    for (i, s) in pl.segments.iter().enumerate() {
        if s.map.is_some() {
            map = s.map.as_ref();
        }
        if i < start {
            continue;
        }
        let Some((path, key)) = &keys[i] else {
            tracing::warn!(rendition = name, uri = %s.uri, "listed segment is missing or outside the watched directory; skipped");
            continue;
        };
        if s.byte_range.is_some() {
            if !track.warned_byte_range {
                tracing::warn!(
                    rendition = name,
                    "byte-range playlists (single-file HLS) are not supported; skipped"
                );
                update.byte_range_warned = true;
            }
            continue;
        }
        let data = match read_bounded(path, limits::MAX_SEGMENT_BYTES) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(rendition = name, uri = %s.uri, error = %e, "cannot read listed segment; skipped");
                continue;
            }
        };
        if source_key(&s.uri, path).as_ref() != Some(key) || data.len() as u64 != key.len {
            // Rewritten under us: the next scan sees it settled.
            break;
        }
        let init = match map {
            Some(map) => {
                let Some(ipath) = resolve(root, base, &map.uri) else {
                    tracing::warn!(rendition = name, uri = %map.uri, "init segment outside the watched directory; skipped");
                    continue;
                };
                let Some(ikey) = source_key(&map.uri, &ipath) else {
                    continue;
                };
                match &init_cache {
                    Some((k, bytes)) if *k == ikey => Some(bytes.clone()),
                    _ => {
                        let Ok(bytes) = read_bounded(&ipath, limits::MAX_INIT_BYTES) else {
                            continue;
                        };
                        let bytes: Arc<[u8]> = bytes.into();
                        init_cache = Some((ikey, bytes.clone()));
                        update.init = init_cache.clone();
                        Some(bytes)
                    }
                }
            }
            None => None,
        };
        if !known.is_empty() && known.contains(&Hash::of(&data)) {
            update.last = Some(key.clone());
            update.seen.push(key.clone());
            continue;
        }
        let duration_us = (f64::from(s.duration) * 1_000_000.0).round() as u64;
        // Without a packager PDT the wall clock is filled in below, segment by segment.
        let pdt_ms = s.program_date_time.map(|t| t.timestamp_millis().max(0) as u64);
        out.push(NewSegment {
            rendition: name.to_string(),
            container: if init.is_some() { Container::Fmp4 } else { Container::Ts },
            data: data.into(),
            init,
            duration_us,
            discontinuity: s.discontinuity || (lost_track && out.is_empty()),
            independent: true,
            pdt_ms,
            info: info.clone(),
        });
        update.last = Some(key.clone());
        update.seen.push(key.clone());
    }
    // Segments without a packager PDT end back to back at "now".
    let mut end = now_ms();
    for seg in out.iter_mut().rev() {
        let start = seg.pdt_ms.unwrap_or_else(|| end.saturating_sub(seg.duration_us / 1000));
        seg.pdt_ms = Some(start);
        end = start;
    }
    Ok((out, update))
}

fn source_key(uri: &str, path: &Path) -> Option<SourceKey> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mtime_ns = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    Some(SourceKey {
        uri: uri.to_string(),
        len: meta.len(),
        mtime_ns,
    })
}

/// Resolve a playlist URI to a file inside the watched directory; URLs and escapes are refused.
fn resolve(root: &Path, base: &Path, uri: &str) -> Option<PathBuf> {
    if uri.contains("://") || uri.starts_with('/') {
        return None;
    }
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    let mut path = base.to_path_buf();
    for c in Path::new(uri).components() {
        match c {
            Component::Normal(p) => path.push(p),
            Component::ParentDir => {
                path.pop();
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    path.starts_with(root).then_some(path)
}

fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    file.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(buf)
}

/// `*.m3u8` files in `dir` and one level of sub-directories, as paths relative to `root`.
fn list_playlists(root: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() && depth == 0 {
            list_playlists(root, &path, depth + 1, out);
        } else if ft.is_file()
            && name.ends_with(".m3u8")
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    out.sort();
}

/// A rendition name from a playlist path: `[A-Za-z0-9_-]`, at most 32 bytes, never `master`.
fn rendition_name(rel: &str) -> String {
    let stem = rel.strip_suffix(".m3u8").unwrap_or(rel);
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.len() > limits::MAX_NAME_BYTES {
        name = name[name.len() - limits::MAX_NAME_BYTES..].to_string();
    }
    if name.is_empty() || name == "master" {
        name.push_str("_r");
    }
    name
}
