//! The on-disk layout of one stream, which is also its HTTP layout, so any static file server
//! can mirror a stream (docs/PROTOCOL.md §11):
//!
//! ```text
//! DATA/streams/<stream_id>/manifest.json   latest MANIFEST_ROOT (canonical wire bytes)
//!                          announce.json   latest STREAM_ANNOUNCE
//!                          log.jsonl       every log entry, one canonical JSON per line
//!                          master.m3u8, <rendition>.m3u8   rendered from manifest.json
//!                          seg/<hash>.m4s|ts|mp4          content-addressed segments
//! ```
//! Every file except the log is replaced atomically (write, fsync, rename, fsync directory).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::canonical::to_canonical;
use crate::merkle::LogEntry;
use crate::objects::{ManifestRoot, Signed, StreamAnnounce};
use crate::playlist::{self, MASTER};
use crate::{Error, Result, StreamId};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const ANNOUNCE_FILE: &str = "announce.json";
pub const LOG_FILE: &str = "log.jsonl";
pub const SEGMENT_DIR: &str = "seg";

/// Directory of one stream under a data directory.
pub fn stream_dir(data_dir: &Path, stream: &StreamId) -> PathBuf {
    data_dir.join("streams").join(stream.to_string())
}

/// One stream's files.
#[derive(Debug, Clone)]
pub struct StreamStore {
    dir: PathBuf,
    stream: StreamId,
}

impl StreamStore {
    /// Open (creating if needed) the store of `stream` under `data_dir`.
    pub fn open(data_dir: &Path, stream: StreamId) -> Result<Self> {
        let dir = stream_dir(data_dir, &stream);
        let seg = dir.join(SEGMENT_DIR);
        fs::create_dir_all(&seg).map_err(Error::io("create directory", &seg))?;
        Ok(StreamStore { dir, stream })
    }

    /// Open an existing stream directory (for verification); never creates anything.
    pub fn at(dir: PathBuf, stream: StreamId) -> Self {
        StreamStore { dir, stream }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// Absolute path of a file given by its path relative to the stream directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Store a content-addressed blob. A blob that already exists with the right size is kept.
    pub fn put_blob(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(rel);
        if fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(());
        }
        write_atomic(&path, bytes)
    }

    pub fn remove_blob(&self, rel: &str) {
        let path = self.path(rel);
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove pruned segment");
        }
    }

    pub fn read_blob(&self, rel: &str) -> Result<Vec<u8>> {
        let path = self.path(rel);
        fs::read(&path).map_err(Error::io("read", path))
    }

    /// The stored MANIFEST_ROOT, verified against this stream's key.
    pub fn read_manifest(&self) -> Result<Option<Signed<ManifestRoot>>> {
        self.read_signed(MANIFEST_FILE)
    }

    pub fn read_announce(&self) -> Result<Option<Signed<StreamAnnounce>>> {
        self.read_signed(ANNOUNCE_FILE)
    }

    fn read_signed<T: crate::SignedObject>(&self, name: &str) -> Result<Option<Signed<T>>> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(bytes) => Signed::<T>::verify(&bytes, &self.stream)
                .map(Some)
                .map_err(|e| Error::Store {
                    path,
                    reason: format!("stored {name} does not verify: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path)(e)),
        }
    }

    /// Write the manifest and the playlists rendered from it. The manifest is written last: it
    /// is the commit point a restart resumes from. The playlists are derived from it, so they
    /// are replaced atomically but not synced: the manifest's directory sync makes their
    /// renames durable, and [`StreamStore::write_playlists`] renders them again from the
    /// stored manifest when the signer opens (a crash may have left an older playlist). This
    /// halves the syncs of a publish.
    pub fn write_manifest(&self, m: &Signed<ManifestRoot>) -> Result<()> {
        self.write_playlists(m)?;
        write_atomic(&self.path(MANIFEST_FILE), m.wire())
    }

    /// The playlists rendered from `m`, each replaced atomically, not synced.
    pub fn write_playlists(&self, m: &Signed<ManifestRoot>) -> Result<()> {
        for r in &m.body.renditions {
            replace(
                &self.path(&playlist::media_playlist_name(&r.name)),
                playlist::render_media(r).as_bytes(),
                false,
            )?;
        }
        replace(&self.path(MASTER), playlist::render_master(&m.body).as_bytes(), false)
    }

    pub fn write_announce(&self, a: &Signed<StreamAnnounce>) -> Result<()> {
        write_atomic(&self.path(ANNOUNCE_FILE), a.wire())
    }

    /// Append entries to the log and fsync.
    pub fn append_log(&self, entries: &[LogEntry]) -> Result<()> {
        let path = self.path(LOG_FILE);
        let mut buf = Vec::new();
        for e in entries {
            let value = serde_json::to_value(e).map_err(|e| Error::Malformed(e.to_string()))?;
            buf.extend_from_slice(&to_canonical(&value)?);
            buf.push(b'\n');
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        let len = f.metadata().map_err(Error::io("stat", &path))?.len();
        let res = f
            .write_all(&buf)
            .map_err(Error::io("append", &path))
            .and_then(|()| f.sync_data().map_err(Error::io("sync", &path)));
        if res.is_err() {
            // A short write (a full disk) would leave a torn line that the next append turns
            // into an unparsable one: cut the file back to where this append began.
            if let Err(e) = f.set_len(len) {
                tracing::error!(path = %path.display(), error = %e, "cannot cut a failed append off the log");
            }
        }
        res
    }

    /// Read the log. A torn last line (a crash mid-append) is cut off the file.
    pub fn read_log(&self) -> Result<Vec<LogEntry>> {
        let path = self.path(LOG_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("open", &path)(e)),
        };
        let mut entries = Vec::new();
        let mut good_len = 0u64;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(Error::io("read", &path))?;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                tracing::warn!(path = %path.display(), "cutting a torn last line off the segment log");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(Error::io("open", &path))?;
                f.set_len(good_len).map_err(Error::io("truncate", &path))?;
                break;
            }
            let entry: LogEntry = serde_json::from_slice(&line[..n - 1]).map_err(|e| Error::Store {
                path: path.clone(),
                reason: format!("log line {}: {e}", entries.len() + 1),
            })?;
            entries.push(entry);
            good_len += n as u64;
        }
        Ok(entries)
    }
}

/// Replace `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// Replace `path` with `bytes` atomically (a temp file renamed over it); with `durable`, the
/// data and the rename are synced first.
fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = File::create(&tmp)
        .map_err(Error::io("create", &tmp))
        .and_then(|mut f| {
            f.write_all(bytes).map_err(Error::io("write", &tmp))?;
            if durable {
                f.sync_data().map_err(Error::io("sync", &tmp))?;
            }
            Ok(())
        })
        .and_then(|()| fs::rename(&tmp, path).map_err(Error::io("rename", path)));
    if written.is_err() {
        // A partial temp file (a full disk) would keep holding the space it took.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if !durable {
        return Ok(());
    }
    if let Ok(d) = File::open(dir) {
        // Make the rename durable; a failure here only weakens durability.
        let _ = d.sync_all();
    }
    Ok(())
}
