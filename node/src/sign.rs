//! `hlswarm sign --watch DIR`: sign an external packager's HLS output as it is written.

use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use manifest_signer::signer::{SignerConfig, StreamSigner};
use manifest_signer::watcher::{Control, DirWatcher};
use manifest_signer::{Hints, ManifestRoot, Signed, StreamKey, now_ms};

use crate::cli::SignArgs;
use crate::keygen::default_key_path;

/// How long a STREAM_ANNOUNCE stays valid; it is re-signed at half of that.
const ANNOUNCE_TTL_MS: u64 = 60 * 60 * 1000;

pub async fn run(data_dir: &Path, args: SignArgs) -> anyhow::Result<ExitCode> {
    let key_path = args.key.clone().unwrap_or_else(|| default_key_path(data_dir));
    let (key, created) = StreamKey::load_or_create(&key_path)?;
    if created {
        eprintln!("created stream key {} (mode 0600; back it up)", key_path.display());
    }
    let stream = key.stream_id();
    let cfg = SignerConfig {
        window: args.window,
        retain_segments: (args.retain > 0).then_some(args.retain),
        ..SignerConfig::default()
    };
    let signer = StreamSigner::open(key, data_dir, cfg).context("opening the stream store")?;
    let out_dir = signer.store().dir().to_path_buf();
    let mut watcher = DirWatcher::new(args.watch.clone(), signer)?.with_rendition_name(&args.rendition)?;
    if args.idle_end_seconds > 0 {
        watcher = watcher.with_idle_end(Duration::from_secs(args.idle_end_seconds));
    }
    println!("stream id   {stream}");
    println!("signing     {} -> {}", args.watch.display(), out_dir.display());

    let mut announcer = Announcer { args, last: None };
    if announcer.args.once {
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<u64>> {
            let m = watcher.scan()?;
            let mut signer = watcher.into_signer();
            if let Some(m) = &m {
                announcer.maybe_announce(&mut signer, m);
            }
            Ok(m.map(|m| m.body.seq))
        })
        .await??;
        match result {
            Some(seq) => println!("signed      manifest {seq}"),
            None => println!("nothing new to sign"),
        }
        return Ok(ExitCode::SUCCESS);
    }

    let (tx, rx) = mpsc::sync_channel(1);
    let stop = tx.clone();
    let rescan = Duration::from_millis(announcer.args.rescan_ms.max(50));
    let task = tokio::task::spawn_blocking(move || {
        watcher.run(tx, rx, rescan, |signer, m| {
            tracing::info!(seq = m.body.seq, log = m.body.log.size, "signed MANIFEST_ROOT");
            announcer.maybe_announce(signer, m);
        })
    });
    tokio::pin!(task);
    tokio::select! {
        res = &mut task => { res??; }
        _ = crate::shutdown_signal() => {
            tracing::info!("stopping: signing what is complete");
            let _ = stop.send(Control::Stop);
            task.await??;
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct Announcer {
    args: SignArgs,
    /// (time signed, renditions described) of the last announce.
    last: Option<(u64, String)>,
}

impl Announcer {
    /// Sign a new STREAM_ANNOUNCE when the renditions changed or the last one is half-way to expiry.
    fn maybe_announce(&mut self, signer: &mut StreamSigner, m: &Signed<ManifestRoot>) {
        let shape = describe(&m.body);
        let due = match &self.last {
            None => true,
            Some((at, s)) => *s != shape || now_ms().saturating_sub(*at) > ANNOUNCE_TTL_MS / 2,
        };
        if !due {
            return;
        }
        let hints = Hints {
            http: self.args.http_hints.clone(),
            ..Hints::default()
        };
        match signer.announce(&self.args.title, hints, self.args.tip.clone(), ANNOUNCE_TTL_MS) {
            Ok(a) => {
                tracing::info!(seq = a.body.seq, "signed STREAM_ANNOUNCE");
                self.last = Some((now_ms(), shape));
            }
            Err(e) => tracing::error!(error = %e, "cannot sign STREAM_ANNOUNCE"),
        }
    }
}

fn describe(m: &ManifestRoot) -> String {
    m.renditions
        .iter()
        .map(|r| format!("{}:{:?}:{:?}", r.name, r.codecs, r.resolution))
        .collect::<Vec<_>>()
        .join(",")
}
