//! `hlswarm run`: RTMP ingest in, signed HLS out. Each segment the ingest finishes is hashed,
//! stored and signed into a new MANIFEST_ROOT before the next one is taken.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use manifest_signer::signer::{NewSegment, RenditionInfo, SignerConfig, StreamSigner};
use manifest_signer::{Container, Hints, StreamKey, now_ms};
use tokio::sync::mpsc;

use crate::cli::RunArgs;
use crate::keygen::default_key_path;

/// The one stream name the ingest maps the publish secret to.
const STREAM: &str = "main";
const ANNOUNCE_TTL_MS: u64 = 60 * 60 * 1000;

pub async fn run(data_dir: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let ladder = ingest::parse_ladder(&args.ladder).context("--ladder")?;
    ingest::check_ladder(&ladder, Path::new("ffmpeg"))
        .await
        .context("--ladder")?;
    let key_path = args.key.clone().unwrap_or_else(|| default_key_path(data_dir));
    let (key, created) = StreamKey::load_or_create(&key_path)?;
    if created {
        eprintln!(
            "created stream key {} (mode 0600; back it up: it is the stream's identity)",
            key_path.display()
        );
    }
    let stream_id = key.stream_id();
    let secret = match &args.stream_key {
        Some(s) if !s.is_empty() => s.clone(),
        _ => publish_secret(data_dir)?,
    };
    let cfg = SignerConfig {
        window: args.window,
        retain_segments: (args.retain > 0).then_some(args.retain),
        target_duration: args.segment_seconds.clamp(1, 60),
    };
    let mut signer = StreamSigner::open(key, data_dir, cfg).context("opening the stream store")?;
    let listener = tokio::net::TcpListener::bind(args.rtmp)
        .await
        .with_context(|| format!("binding RTMP on {}", args.rtmp))?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "HOST".to_string()
    } else {
        addr.ip().to_string()
    };
    println!("hlswarm node running");
    println!("  stream id   {stream_id}");
    println!("  OBS server  rtmp://{host}:{}/live", addr.port());
    println!("  stream key  {secret}");
    println!(
        "  signed HLS  {}",
        signer.store().path(manifest_signer::playlist::MASTER).display()
    );
    println!("rtmp listening on {addr}");

    let ingest_cfg = ingest::IngestConfig {
        keys: vec![ingest::StreamKey {
            key: secret,
            stream: STREAM.into(),
        }],
        target_duration: Duration::from_secs(args.segment_seconds.clamp(1, 60)),
        container: if args.ts {
            ingest::Container::Ts
        } else {
            ingest::Container::Fmp4
        },
        ladder,
        ..ingest::IngestConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(16);
    let ingest = tokio::spawn(ingest::serve(listener, ingest_cfg, tx, crate::shutdown_signal()));

    let mut announced: Option<String> = None;
    let mut announced_at = 0;
    // The channel closes when the ingest returns (after flushing the partial segment on shutdown).
    while let Some(event) = rx.recv().await {
        match event {
            ingest::IngestEvent::Publishing { session, .. } => tracing::info!(session, "publisher connected"),
            ingest::IngestEvent::Unpublished { session, .. } => {
                tracing::info!(session, "publisher gone: marking the stream ended");
                if let Err(e) = tokio::task::block_in_place(|| signer.end()) {
                    tracing::error!(error = %e, "cannot sign the end of the stream");
                }
            }
            ingest::IngestEvent::Segment(seg) => {
                let new = to_new_segment(seg);
                let signed = tokio::task::block_in_place(|| signer.publish(vec![new]));
                match signed {
                    Ok(m) => {
                        tracing::info!(seq = m.body.seq, log = m.body.log.size, "signed MANIFEST_ROOT");
                        let shape = format!(
                            "{:?}",
                            m.body
                                .renditions
                                .iter()
                                .map(|r| (&r.codecs, &r.resolution))
                                .collect::<Vec<_>>()
                        );
                        if announced.as_ref() != Some(&shape)
                            || now_ms().saturating_sub(announced_at) > ANNOUNCE_TTL_MS / 2
                        {
                            match signer.announce(&args.title, Hints::default(), None, ANNOUNCE_TTL_MS) {
                                Ok(_) => {
                                    announced = Some(shape);
                                    announced_at = now_ms();
                                }
                                Err(e) => tracing::error!(error = %e, "cannot sign STREAM_ANNOUNCE"),
                            }
                        }
                    }
                    // The node keeps running: a segment it cannot sign is dropped, never served unsigned.
                    Err(e) => tracing::error!(error = %e, "cannot sign segment; dropped"),
                }
            }
        }
    }
    ingest.await.context("ingest task")?.context("RTMP ingest")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn to_new_segment(seg: ingest::Segment) -> NewSegment {
    let info = &seg.info;
    NewSegment {
        rendition: seg.rendition.clone(),
        container: match seg.container {
            ingest::Container::Fmp4 => Container::Fmp4,
            ingest::Container::Ts => Container::Ts,
        },
        data: Arc::from(&seg.data[..]),
        init: seg.init.as_ref().map(|b| Arc::from(&b[..])),
        duration_us: seg.duration_us,
        discontinuity: seg.discontinuity,
        pdt_ms: Some(now_ms().saturating_sub(seg.duration_us / 1000)),
        info: RenditionInfo {
            codecs: (!info.codecs.is_empty()).then(|| info.codecs.clone()),
            resolution: (info.width > 0 && info.height > 0).then(|| format!("{}x{}", info.width, info.height)),
            frame_rate_milli: (info.frame_rate_milli > 0).then_some(u64::from(info.frame_rate_milli)),
            bandwidth: (info.bandwidth > 0).then_some(info.bandwidth),
            target_duration: None,
        },
    }
}

/// The publish secret OBS uses as its stream key: generated once, kept 0600 beside the keys.
fn publish_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("keys").join("publish.secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, secret.as_bytes())?;
    Ok(secret)
}
