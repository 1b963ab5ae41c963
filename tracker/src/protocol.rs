//! The WebTorrent tracker protocol: JSON text messages over a WebSocket, as spoken by the npm
//! `bittorrent-tracker` client (and p2p-media-loader, which uses it).
//!
//! In: `{"action":"announce", info_hash, peer_id, numwant?, uploaded?, downloaded?, left?, event?,
//! offers?: [{offer, offer_id}]}`, the same with `to_peer_id, answer, offer_id` to answer an
//! offer, and `{"action":"scrape", info_hash?: one | [many]}`.
//! Out: the announce reply `{action, info_hash, interval, complete, incomplete}`, a relayed offer
//! `{action, info_hash, peer_id, offer, offer_id}`, a relayed answer `{action, info_hash, peer_id,
//! answer, offer_id}`, the scrape reply `{action:"scrape", files:{info_hash:{complete,
//! incomplete, downloaded}}}` and `{"failure reason": ...}`.
//!
//! `info_hash`, `peer_id`, `offer_id` and `to_peer_id` are 20 bytes written as a JSON string of
//! 20 characters, one per byte (code points 0-255, as JavaScript's "binary" strings). They are
//! decoded into [`Id20`] newtypes and encoded back exactly; anything else is refused. The SDP
//! `offer`/`answer` values are [`Opaque`]: checked to be JSON, kept as their text and relayed as
//! they came, never built into a tree (the message size is capped).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// 20 bytes carried as a 20-character "binary" string.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id20(pub [u8; 20]);

/// A swarm's id (p2p-media-loader: SHA-1 of the swarm id; WebTorrent: the torrent's info hash).
pub type InfoHash = Id20;
/// A peer's id, chosen by the client.
pub type PeerId = Id20;
/// Pairs an offer with its answer.
pub type OfferId = Id20;

impl Id20 {
    /// Decode a binary string: exactly 20 chars, each U+0000-U+00FF.
    pub fn from_binary_str(s: &str) -> Option<Id20> {
        let mut out = [0u8; 20];
        let mut chars = s.chars();
        for b in &mut out {
            *b = u8::try_from(u32::from(chars.next()?)).ok()?;
        }
        chars.next().is_none().then_some(Id20(out))
    }

    /// Encode as a binary string (one char per byte).
    pub fn to_binary_string(&self) -> String {
        self.0.iter().map(|&b| char::from(b)).collect()
    }
}

impl fmt::Debug for Id20 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for Id20 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // At most two UTF-8 bytes per char: encoded on the stack, not in a String.
        let mut buf = [0u8; 40];
        let mut len = 0;
        for &b in &self.0 {
            len += char::from(b).encode_utf8(&mut buf[len..]).len();
        }
        s.serialize_str(std::str::from_utf8(&buf[..len]).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Id20 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Id20Visitor)
    }
}

/// Reads the string in place (borrowed or the parser's scratch buffer): no allocation.
struct Id20Visitor;

impl Visitor<'_> for Id20Visitor {
    type Value = Id20;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a 20-character binary string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Id20, E> {
        Id20::from_binary_str(s).ok_or_else(|| E::custom("expected a 20-character binary string"))
    }
}

/// A JSON value carried through untouched: the SDP `offer` or `answer`, which only the peers
/// read. Parsing checks that it is well-formed JSON; it is kept and written back as its text.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Opaque(Box<RawValue>);

impl Opaque {
    /// The JSON text, as it came.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl From<Value> for Opaque {
    fn from(v: Value) -> Opaque {
        // A `Value` always serializes (string keys, finite numbers).
        Opaque(serde_json::value::to_raw_value(&v).unwrap_or_default())
    }
}

impl PartialEq for Opaque {
    fn eq(&self, other: &Opaque) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// `event` of an announce. Absent means a periodic update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Started,
    Stopped,
    Completed,
    Update,
    Paused,
}

/// One WebRTC offer to be handed to one other peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub offer: Opaque,
    pub offer_id: OfferId,
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", try_from = "WireRequest")]
pub enum Request {
    Announce(AnnounceRequest),
    Scrape(ScrapeRequest),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    #[serde(default, deserialize_with = "count", skip_serializing_if = "Option::is_none")]
    pub numwant: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloaded: Option<f64>,
    /// Bytes left; `null` (JavaScript's `Infinity`) or absent means unknown: a leecher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offers: Option<Vec<Offer>>,
    /// Set (with `to_peer_id` and `offer_id`) when this message answers a relayed offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_peer_id: Option<PeerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<OfferId>,
}

/// Largest `numwant` accepted: clients ask for a handful; the tracker sends at most
/// `max_numwant` whatever they ask.
pub const MAX_NUMWANT: u64 = u32::MAX as u64;
/// Largest byte count accepted in `uploaded`, `downloaded` and `left`: 2^53, the largest
/// integer a JavaScript client holds exactly.
pub const MAX_BYTE_COUNT: f64 = 9_007_199_254_740_992.0;

/// `numwant`: a whole number from 0 to [`MAX_NUMWANT`] (`50.0` is fine), or `null`. Anything
/// else (negative, fractional, 1e308, NaN) is refused, not silently read as "absent".
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(v) if v >= 0.0 && v <= MAX_NUMWANT as f64 && v.fract() == 0.0 => Ok(Some(v as u64)),
        Some(_) => Err(serde::de::Error::custom(format_args!(
            "numwant must be a whole number from 0 to {MAX_NUMWANT}"
        ))),
    }
}

/// `uploaded`, `downloaded`, `left`: a byte count from 0 to 2^53, or `null` (JavaScript's
/// `Infinity`, which `bittorrent-tracker` sends as `left` when the size is unknown).
fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(v) if (0.0..=MAX_BYTE_COUNT).contains(&v) => Ok(Some(v)),
        Some(_) => Err(serde::de::Error::custom(
            "uploaded, downloaded and left must be byte counts from 0 to 2^53",
        )),
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScrapeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_hash: Option<OneOrMany>,
}

/// `info_hash` of a scrape: one or a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(InfoHash),
    Many(Vec<InfoHash>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneOrManyVisitor)
    }
}

/// A string or a list of strings, read directly (a derived untagged enum buffers the value).
struct OneOrManyVisitor;

impl<'de> Visitor<'de> for OneOrManyVisitor {
    type Value = OneOrMany;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a binary string or a list of them")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<OneOrMany, E> {
        Id20Visitor.visit_str(s).map(OneOrMany::One)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(h) = seq.next_element()? {
            v.push(h);
        }
        Ok(OneOrMany::Many(v))
    }
}

impl OneOrMany {
    pub fn as_slice(&self) -> &[InfoHash] {
        match self {
            OneOrMany::One(h) => std::slice::from_ref(h),
            OneOrMany::Many(v) => v,
        }
    }
}

/// The `action` field of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Announce,
    Scrape,
}

/// The reply to an announce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceResponse {
    pub action: Action,
    pub info_hash: InfoHash,
    /// Seconds until the next announce.
    pub interval: u64,
    /// Seeders.
    pub complete: u64,
    /// Leechers.
    pub incomplete: u64,
}

/// An offer relayed to one peer; `peer_id` is the offering peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferOut {
    pub action: Action,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub offer: Opaque,
    pub offer_id: OfferId,
}

/// An answer relayed to the peer that made the offer; `peer_id` is the answering peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerOut {
    pub action: Action,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub answer: Opaque,
    pub offer_id: OfferId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScrapeStats {
    pub complete: u64,
    pub incomplete: u64,
    pub downloaded: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrapeResponse {
    pub action: Action,
    pub files: BTreeMap<InfoHash, ScrapeStats>,
}

/// An error reply. `action` and `info_hash` are set when known: the bittorrent-tracker client
/// ignores replies without an `action` and matches announce failures by `info_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_hash: Option<InfoHash>,
    #[serde(rename = "failure reason")]
    pub reason: String,
}

/// Everything the tracker sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Announce(AnnounceResponse),
    Offer(OfferOut),
    Answer(AnswerOut),
    Scrape(ScrapeResponse),
    Failure(Failure),
}

impl Response {
    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        let opaque = match self {
            Response::Offer(o) => o.offer.get().len(),
            Response::Answer(a) => a.answer.get().len(),
            _ => 0,
        };
        let mut out = Vec::with_capacity(160 + opaque);
        // Serializing these types cannot fail: string keys, no non-finite floats; the output of
        // serde_json is UTF-8.
        match serde_json::to_writer(&mut out, self) {
            Ok(()) => String::from_utf8(out).unwrap_or_default(),
            Err(_) => String::from("{\"failure reason\":\"internal error\"}"),
        }
    }
}

/// Parse one text frame from a client.
pub fn parse_request(text: &str) -> Result<Request, serde_json::Error> {
    serde_json::from_str(text)
}

/// Every field any request may have, read in one pass. (A derived `#[serde(tag)]` enum would
/// first copy the whole message into an intermediate tree, and cannot hold an [`Opaque`].)
#[derive(Deserialize)]
struct WireRequest {
    action: WireAction,
    #[serde(default)]
    info_hash: Option<OneOrMany>,
    #[serde(default)]
    peer_id: Option<PeerId>,
    #[serde(default, deserialize_with = "count")]
    numwant: Option<u64>,
    #[serde(default, deserialize_with = "bytes")]
    uploaded: Option<f64>,
    #[serde(default, deserialize_with = "bytes")]
    downloaded: Option<f64>,
    #[serde(default, deserialize_with = "bytes")]
    left: Option<f64>,
    #[serde(default)]
    event: Option<Event>,
    #[serde(default)]
    offers: Option<Vec<Offer>>,
    #[serde(default)]
    answer: Option<Opaque>,
    #[serde(default)]
    to_peer_id: Option<PeerId>,
    #[serde(default)]
    offer_id: Option<OfferId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum WireAction {
    Announce,
    Scrape,
}

impl TryFrom<WireRequest> for Request {
    type Error = &'static str;

    fn try_from(w: WireRequest) -> Result<Request, &'static str> {
        Ok(match w.action {
            WireAction::Scrape => Request::Scrape(ScrapeRequest { info_hash: w.info_hash }),
            WireAction::Announce => Request::Announce(AnnounceRequest {
                info_hash: match w.info_hash {
                    Some(OneOrMany::One(h)) => h,
                    _ => return Err("an announce needs one info_hash"),
                },
                peer_id: w.peer_id.ok_or("an announce needs a peer_id")?,
                numwant: w.numwant,
                uploaded: w.uploaded,
                downloaded: w.downloaded,
                left: w.left,
                event: w.event,
                offers: w.offers,
                answer: w.answer,
                to_peer_id: w.to_peer_id,
                offer_id: w.offer_id,
            }),
        })
    }
}
