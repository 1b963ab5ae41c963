//! Follow one stream over MoQ: connect (redialing with backoff), find the broadcast named by
//! the stream id, subscribe to its announce, manifest and rendition tracks, and pass every
//! object through a [`Follower`] so only verified data comes out, as [`Event`]s.
//!
//! A relay restart ends the broadcast; the connection redials and the broadcast is looked up
//! again while the verification state (the chain) carries on.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use manifest_signer::objects::limits;
use manifest_signer::{ManifestRoot, Signed, StreamId};
use moq_net::track::{self, Subscription};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::follow::{Follower, Refusal, Verified, max_frame_bytes};
use super::mapping::{self, ANNOUNCE_TRACK, MANIFEST_TRACK};
use crate::metrics::Metrics;

/// Where to follow a stream from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The session URL (relay or node); the broadcast is the stream id beneath it.
    pub url: url::Url,
    pub stream: StreamId,
    pub tls_insecure: bool,
    pub tls_fingerprint: Vec<String>,
}

impl Source {
    /// `URL/<stream id>`, or `URL` with `stream` given apart.
    pub fn parse(url: &str, stream: Option<&str>, jwt: Option<&str>) -> anyhow::Result<Source> {
        let mut url = super::serve::with_jwt(url, jwt)?;
        let stream = match stream {
            Some(s) => s
                .parse::<StreamId>()
                .map_err(|e| anyhow::anyhow!("stream id {s:?}: {e}"))?,
            None => {
                let last = url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .unwrap_or_default()
                    .to_string();
                let id = last
                    .parse::<StreamId>()
                    .map_err(|e| anyhow::anyhow!("the URL must end in the stream id (or pass --stream): {e}"))?;
                if let Ok(mut segs) = url.path_segments_mut() {
                    segs.pop();
                }
                id
            }
        };
        Ok(Source {
            url,
            stream,
            tls_insecure: false,
            tls_fingerprint: Vec::new(),
        })
    }
}

/// What following a stream yields. Only verified data.
#[derive(Debug)]
pub enum Event {
    /// The session is up (again); `epoch` counts sessions.
    Connected {
        epoch: u64,
    },
    /// The broadcast was found (again) and its tracks subscribed.
    Broadcast,
    Manifest {
        manifest: Signed<ManifestRoot>,
        wire: Bytes,
    },
    Announce {
        wire: Bytes,
    },
    Segment(Verified),
    /// A refused object: logged and counted already. `reason` is the metrics label.
    Refused {
        reason: &'static str,
        error: String,
    },
}

/// A raw object from one track task to the verifying loop.
enum Object {
    Manifest(Bytes),
    Announce(Bytes),
    Group {
        rendition: String,
        seq: u64,
        frames: Vec<Bytes>,
    },
    Bad(String),
}

/// Objects in flight between the track readers and the verifier.
const OBJECT_QUEUE: usize = 16;
/// Time to read one group once it started arriving.
const GROUP_READ_LIMIT: Duration = Duration::from_secs(30);

/// Follow `source` until `stop` or until `events` is dropped.
pub async fn follow(
    source: Source,
    events: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    super::init_crypto();
    let client = super::serve::client_config(source.tls_insecure, &source.tls_fingerprint)
        .init(moq_tokio::quic::Config::default())?;
    let origin = moq_tokio::origin::spawn();
    let mut conn = client.with_subscriber(origin.clone()).connect(source.url.clone());
    let consumer = origin.consume();
    let path = mapping::broadcast_path(&source.stream);
    let mut follower = Follower::new(source.stream);
    tokio::pin!(stop);
    loop {
        // Wait for the broadcast (after a (re)connect, or after it ended).
        let broadcast = tokio::select! {
            _ = &mut stop => return Ok(()),
            status = conn.status() => {
                match status {
                    Ok(moq_tokio::Status::Connected) => {
                        if events.send(Event::Connected { epoch: conn.epoch() }).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(s) => tracing::info!(status = ?s, "moq source"),
                    Err(e) => return Err(anyhow::anyhow!("moq source connection gave up: {e}")),
                }
                continue;
            }
            b = consumer.routed_broadcast(path.as_str()) => b?,
        };
        if events.send(Event::Broadcast).await.is_err() {
            return Ok(());
        }
        let (tx, mut rx) = mpsc::channel(OBJECT_QUEUE);
        let mut tasks = JoinSet::new();
        let mut subscribed = std::collections::HashSet::new();
        for (name, kind) in [(ANNOUNCE_TRACK, Kind::Announce), (MANIFEST_TRACK, Kind::Manifest)] {
            let t = broadcast.track(name)?;
            tasks.spawn(read_track(t, kind, Duration::ZERO, tx.clone()));
        }
        let closed = broadcast.closed();
        tokio::pin!(closed);
        loop {
            let object = tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = &mut closed => {
                    tracing::info!(stream = %source.stream, "moq broadcast ended; looking it up again");
                    break;
                }
                o = rx.recv() => match o { Some(o) => o, None => break },
                status = conn.status() => {
                    if let Ok(moq_tokio::Status::Connected) = status
                        && events.send(Event::Connected { epoch: conn.epoch() }).await.is_err()
                    {
                        return Ok(());
                    }
                    if let Err(e) = status {
                        return Err(anyhow::anyhow!("moq source connection gave up: {e}"));
                    }
                    continue;
                }
            };
            let out = verify(&mut follower, object, &metrics);
            for ev in out {
                // Subscribe to renditions the first time an accepted manifest names them.
                if let Event::Manifest { manifest, .. } = &ev {
                    for r in &manifest.body.renditions {
                        if subscribed.len() < limits::MAX_RENDITIONS && subscribed.insert(r.name.clone()) {
                            let t = broadcast.track(&mapping::rendition_track(&r.name))?;
                            let age = mapping::media_max_age(r.target_duration);
                            let has_init = r.container == manifest_signer::Container::Fmp4;
                            tasks.spawn(read_track(
                                t,
                                Kind::Rendition(r.name.clone(), has_init),
                                age,
                                tx.clone(),
                            ));
                        }
                    }
                }
                if events.send(ev).await.is_err() {
                    return Ok(());
                }
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

fn verify(f: &mut Follower, object: Object, metrics: &Metrics) -> Vec<Event> {
    let mut out = Vec::new();
    let stream = f.stream().to_string();
    let refused = |r: Refusal, out: &mut Vec<Event>| {
        metrics.moq_refused(r.reason());
        tracing::warn!(%stream, reason = r.reason(), error = %r, "moq object refused");
        out.push(Event::Refused {
            reason: r.reason(),
            error: r.to_string(),
        });
    };
    match object {
        Object::Manifest(wire) => match f.on_manifest(&wire) {
            Ok((manifest, settled)) => {
                out.push(Event::Manifest { manifest, wire });
                for s in settled {
                    match s {
                        Ok(v) => out.push(Event::Segment(v)),
                        Err(r) => refused(r, &mut out),
                    }
                }
            }
            // An old manifest again (a relay replays the latest group on every subscribe).
            Err(Refusal::Manifest(manifest_signer::Error::Replay { .. })) => {}
            Err(r) => refused(r, &mut out),
        },
        Object::Announce(wire) => match f.on_announce(&wire) {
            Ok(_) => out.push(Event::Announce { wire }),
            Err(Refusal::Announce(manifest_signer::Error::Replay { .. })) => {}
            Err(r) => refused(r, &mut out),
        },
        Object::Group { rendition, seq, frames } => match f.on_group(&rendition, seq, frames) {
            Ok(Some(v)) => out.push(Event::Segment(v)),
            Ok(None) => {}
            Err(r) => refused(r, &mut out),
        },
        Object::Bad(why) => refused(Refusal::Malformed(why), &mut out),
    }
    out
}

#[derive(Clone)]
enum Kind {
    Announce,
    Manifest,
    /// Rendition name, whether groups carry an init frame first.
    Rendition(String, bool),
}

async fn read_track(track: track::Consumer, kind: Kind, max_age: Duration, tx: mpsc::Sender<Object>) {
    let sub = Subscription::default().with_max_age(max_age);
    let mut sub = match track.subscribe(sub).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(track = track.name(), error = %e, "moq subscribe failed");
            return;
        }
    };
    loop {
        let group = match sub.recv_group().await {
            Ok(Some(g)) => g,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(track = track.name(), error = %e, "moq track ended");
                return;
            }
        };
        let seq = group.sequence;
        let object = match tokio::time::timeout(GROUP_READ_LIMIT, read_group(group, &kind)).await {
            Ok(Ok(frames)) => match &kind {
                Kind::Manifest => frames.into_iter().next().map(Object::Manifest),
                Kind::Announce => frames.into_iter().next().map(Object::Announce),
                Kind::Rendition(name, _) => Some(Object::Group {
                    rendition: name.clone(),
                    seq,
                    frames,
                }),
            },
            Ok(Err(why)) => Some(Object::Bad(format!("{} group {seq}: {why}", track.name()))),
            Err(_) => Some(Object::Bad(format!(
                "{} group {seq}: not complete within {GROUP_READ_LIMIT:?}",
                track.name()
            ))),
        };
        if let Some(o) = object
            && tx.send(o).await.is_err()
        {
            return;
        }
    }
}

/// The frames of a group, each bounded before it is read: manifest and announce groups hold
/// one frame of at most their protocol limit; rendition groups at most two.
async fn read_group(mut group: moq_net::group::Consumer, kind: &Kind) -> Result<Vec<Bytes>, String> {
    let (max_frames, limit): (usize, Box<dyn Fn(usize) -> u64 + Send>) = match kind {
        Kind::Manifest => (1, Box::new(|_| limits::MAX_MANIFEST_BYTES as u64)),
        Kind::Announce => (1, Box::new(|_| limits::MAX_ANNOUNCE_BYTES as u64)),
        Kind::Rendition(_, has_init) => {
            let has_init = *has_init;
            (
                mapping::MAX_FRAMES_PER_GROUP,
                Box::new(move |i| max_frame_bytes(has_init, i)),
            )
        }
    };
    let mut frames = Vec::new();
    while let Some(mut frame) = group.next_frame().await.map_err(|e| e.to_string())? {
        if frames.len() >= max_frames {
            return Err(format!("more than {max_frames} frames"));
        }
        let max = limit(frames.len());
        if frame.size > max {
            return Err(format!("frame of {} bytes, limit {max}", frame.size));
        }
        frames.push(frame.read_all().await.map_err(|e| e.to_string())?);
    }
    if frames.is_empty() {
        return Err("empty group".into());
    }
    Ok(frames)
}
