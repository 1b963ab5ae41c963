//! The signed parts an origin lists and serves for LL-HLS: per stream and rendition, the parts
//! of the newest few media sequence numbers (the segment in progress and the last complete
//! ones), their bytes, and a wakeup for blocking playlist reloads. Bounded: parts older than
//! [`KEEP_SEGMENTS`] sequence numbers behind the newest are dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use manifest_signer::part::SignedPart;
use manifest_signer::playlist_ll::LivePart;
use manifest_signer::{Hash, StreamId};
use tokio::sync::{broadcast, watch};

/// Parts are kept for this many media sequence numbers back from the newest (the playlist
/// lists those of the last three target durations and of the segment in progress).
pub const KEEP_SEGMENTS: u64 = 5;
/// Parts kept per rendition at most, whatever their numbers (10 ms parts of 60 s segments
/// would otherwise be 30,000).
const MAX_PARTS: usize = 2_000;

#[derive(Debug)]
struct Held {
    signed: SignedPart,
    data: Bytes,
}

#[derive(Debug)]
pub struct PartStore {
    streams: Mutex<HashMap<StreamId, HashMap<String, VecDeque<Held>>>>,
    changed: watch::Sender<u64>,
    /// Every part added, as (stream, statement wire bytes): the swarm gossips its own.
    added: broadcast::Sender<(StreamId, Bytes)>,
}

impl PartStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Default for PartStore {
    fn default() -> Self {
        PartStore {
            streams: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            added: broadcast::channel(256).0,
        }
    }
}

impl PartStore {
    /// Keeps a part just signed (or verified) with its bytes, and wakes blocked reloads.
    pub fn add(&self, stream: StreamId, signed: SignedPart, data: Bytes) {
        {
            let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            let list = streams
                .entry(stream)
                .or_default()
                .entry(signed.body.rendition.clone())
                .or_default();
            let newest = signed.body.seq;
            // A part before the newest one held would be a bug of the caller (the signer
            // chains them); such a list starts over rather than going out of order.
            if list
                .back()
                .is_some_and(|h| h.signed.body.position() >= signed.body.position())
            {
                list.clear();
            }
            let _ = self.added.send((stream, Bytes::copy_from_slice(signed.wire())));
            list.push_back(Held { signed, data });
            while list.front().is_some_and(|h| h.signed.body.seq + KEEP_SEGMENTS < newest) || list.len() > MAX_PARTS {
                list.pop_front();
            }
        }
        self.notify();
    }

    /// Wakes blocked playlist reloads (a part or a manifest arrived).
    pub fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Every part added from now on: (stream, PART statement wire bytes).
    pub fn added(&self) -> broadcast::Receiver<(StreamId, Bytes)> {
        self.added.subscribe()
    }

    /// The parts of `rendition` held now, in order.
    pub fn rendition(&self, stream: &StreamId, rendition: &str) -> Vec<LivePart> {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = streams.get(stream).and_then(|s| s.get(rendition)) else {
            return Vec::new();
        };
        list.iter()
            .map(|h| LivePart {
                seq: h.signed.body.seq,
                part: h.signed.body.part,
                dur_us: h.signed.body.dur_us,
                hash: h.signed.body.hash,
                independent: h.signed.body.independent,
                chained: h.signed.body.prev.is_some(),
            })
            .collect()
    }

    /// The wire bytes of the PART statements of `rendition` held after position `after`
    /// (all of them when `None`), in order.
    pub fn statements_after(&self, stream: &StreamId, rendition: &str, after: Option<(u64, u16)>) -> Vec<Vec<u8>> {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = streams.get(stream).and_then(|s| s.get(rendition)) else {
            return Vec::new();
        };
        list.iter()
            .filter(|h| after.is_none_or(|a| h.signed.body.position() > a))
            .map(|h| h.signed.wire().to_vec())
            .collect()
    }

    /// The bytes of a held part, by hash.
    pub fn bytes(&self, stream: &StreamId, hash: &Hash) -> Option<Bytes> {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams
            .get(stream)?
            .values()
            .flat_map(|l| l.iter())
            .find(|h| h.signed.body.hash == *hash)
            .map(|h| h.data.clone())
    }

    /// The bytes of segment `seq` of `rendition` made of its held parts (0, 1, … with no gap),
    /// if any are held; whether they are the whole segment is for the caller's hash to say.
    pub fn concat(&self, stream: &StreamId, rendition: &str, seq: u64) -> Option<Bytes> {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let list = streams.get(stream)?.get(rendition)?;
        let run: Vec<&Held> = list.iter().filter(|h| h.signed.body.seq == seq).collect();
        let contiguous = run
            .iter()
            .enumerate()
            .all(|(i, h)| usize::from(h.signed.body.part) == i);
        if run.is_empty() || !contiguous {
            return None;
        }
        let mut out = Vec::with_capacity(run.iter().map(|h| h.data.len()).sum());
        for h in run {
            out.extend_from_slice(&h.data);
        }
        Some(Bytes::from(out))
    }

    /// The hash and bytes of part `part` of segment `seq` of `rendition`, if held.
    pub fn at(&self, stream: &StreamId, rendition: &str, seq: u64, part: u16) -> Option<(Hash, Bytes)> {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams
            .get(stream)?
            .get(rendition)?
            .iter()
            .find(|h| h.signed.body.position() == (seq, part))
            .map(|h| (h.signed.body.hash, h.data.clone()))
    }
}
