//! Runs the RTMP ingest and writes an HLS folder (a master playlist `index.m3u8`, a media
//! playlist per rendition: `source.m3u8`, and `audio.m3u8` for fMP4's separate audio
//! rendition; init and media segments), to exercise the crate without the rest of hlswarm.
//!
//! ```text
//! cargo run -p ingest --example ingest_to_dir -- 127.0.0.1:1935 /tmp/hls KEY [ts]
//! ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine \
//!     -c:v libx264 -g 60 -c:a aac -f flv rtmp://127.0.0.1:1935/live/KEY
//! ffplay /tmp/hls/index.m3u8
//! ```
//! Ctrl-C stops it; the playlist then gets `#EXT-X-ENDLIST`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ingest::{Container, IngestConfig, IngestEvent, StreamKey};

struct Entry {
    uri: String,
    map: Option<String>,
    duration_us: u64,
    discontinuity: bool,
}

struct Playlist {
    dir: PathBuf,
    rendition: String,
    entries: Vec<Entry>,
    last_init: Option<bytes::Bytes>,
    init_count: u32,
    first_sequence: Option<u64>,
}

impl Playlist {
    fn add(&mut self, seg: &ingest::Segment) -> std::io::Result<()> {
        let mut map = None;
        if let Some(init) = &seg.init
            && self.last_init.as_ref() != Some(init)
        {
            let name = format!("{}_init_{}.mp4", self.rendition, self.init_count);
            std::fs::write(self.dir.join(&name), init)?;
            self.init_count += 1;
            self.last_init = Some(init.clone());
            map = Some(name);
        }
        let ext = match seg.container {
            Container::Fmp4 => "m4s",
            Container::Ts => "ts",
        };
        let uri = format!("{}_{}.{ext}", self.rendition, seg.sequence);
        std::fs::write(self.dir.join(&uri), &seg.data)?;
        self.first_sequence.get_or_insert(seg.sequence);
        self.entries.push(Entry {
            uri,
            map,
            duration_us: seg.duration_us,
            discontinuity: seg.discontinuity && !self.entries.is_empty(),
        });
        Ok(())
    }

    fn write(&self, ended: bool) -> std::io::Result<()> {
        let target = self
            .entries
            .iter()
            .map(|e| e.duration_us.div_ceil(1_000_000))
            .max()
            .unwrap_or(2);
        let mut s = String::new();
        let _ = writeln!(s, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}");
        let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{}", self.first_sequence.unwrap_or(0));
        for e in &self.entries {
            if e.discontinuity {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(map) = &e.map {
                let _ = writeln!(s, "#EXT-X-MAP:URI=\"{map}\"");
            }
            let _ = writeln!(s, "#EXTINF:{:.3},\n{}", e.duration_us as f64 / 1e6, e.uri);
        }
        if ended {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        write_atomic(&self.dir.join(format!("{}.m3u8", self.rendition)), s.as_bytes())
    }
}

/// The master playlist: the video with the audio rendition as its audio group, if there is one.
fn write_master(
    dir: &Path,
    playlists: &BTreeMap<String, Playlist>,
    codecs: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:7\n");
    let audio = playlists.contains_key(ingest::AUDIO_RENDITION);
    if audio {
        let _ = writeln!(
            s,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio.m3u8\""
        );
    }
    for name in playlists.keys().filter(|n| !audio || *n != ingest::AUDIO_RENDITION) {
        let mut all: Vec<&str> = codecs.get(name).into_iter().map(String::as_str).collect();
        all.extend(
            codecs
                .get(ingest::AUDIO_RENDITION)
                .filter(|_| audio)
                .map(String::as_str),
        );
        let group = if audio { ",AUDIO=\"audio\"" } else { "" };
        let _ = writeln!(
            s,
            "#EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS=\"{}\"{group}\n{name}.m3u8",
            all.join(",")
        );
    }
    write_atomic(&dir.join("index.m3u8"), s.as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(dir), Some(key)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: ingest_to_dir ADDR DIR KEY [ts]");
        std::process::exit(2);
    };
    let container = match args.next().as_deref() {
        Some("ts") => Container::Ts,
        _ => Container::Fmp4,
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let cfg = IngestConfig {
        keys: vec![StreamKey {
            key,
            stream: "demo".into(),
        }],
        container,
        ..IngestConfig::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let server = tokio::spawn(ingest::serve(listener, cfg, tx, async {
        let _ = tokio::signal::ctrl_c().await;
    }));
    let mut playlists: BTreeMap<String, Playlist> = BTreeMap::new();
    let mut codecs: BTreeMap<String, String> = BTreeMap::new();
    while let Some(event) = rx.recv().await {
        match event {
            IngestEvent::Publishing { stream, session } => {
                tracing::info!(%stream, session, "publishing")
            }
            IngestEvent::Part(_) => {}
            IngestEvent::Segment(seg) => {
                tracing::info!(
                    rendition = %seg.rendition,
                    seq = seg.sequence,
                    ms = seg.duration_us / 1000,
                    codecs = %seg.info.codecs,
                    "segment"
                );
                let playlist = playlists.entry(seg.rendition.clone()).or_insert_with(|| Playlist {
                    dir: dir.clone(),
                    rendition: seg.rendition.clone(),
                    entries: Vec::new(),
                    last_init: None,
                    init_count: 0,
                    first_sequence: None,
                });
                playlist.add(&seg)?;
                playlist.write(false)?;
                if codecs.insert(seg.rendition.clone(), seg.info.codecs.clone()).as_ref() != Some(&seg.info.codecs) {
                    write_master(&dir, &playlists, &codecs)?;
                }
            }
            IngestEvent::Unpublished { stream, session, .. } => {
                tracing::info!(%stream, session, "unpublished")
            }
        }
    }
    for playlist in playlists.values() {
        playlist.write(true)?;
    }
    server.await??;
    Ok(())
}
