//! The signed objects: MANIFEST_ROOT and STREAM_ANNOUNCE, their limits, and the envelope
//! (`Signed<T>`) that signs, encodes, decodes and verifies them. docs/PROTOCOL.md is the spec.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signature;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{from_canonical, to_canonical};
use crate::{Error, Hash, Result, StreamId, StreamKey};

/// Protocol version carried in every object's `v`.
pub const VERSION: u64 = 1;

/// Protocol limits. A verifier rejects anything larger with `Error::Oversize`.
pub mod limits {
    pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
    pub const MAX_ANNOUNCE_BYTES: usize = 32 * 1024;
    pub const MAX_RENDITIONS: usize = 16;
    pub const MAX_WINDOW_SEGMENTS: usize = 256;
    pub const MAX_NAME_BYTES: usize = 32;
    pub const MAX_TITLE_BYTES: usize = 256;
    pub const MAX_CODECS_BYTES: usize = 128;
    pub const MAX_HINTS_PER_KIND: usize = 16;
    pub const MAX_HINT_BYTES: usize = 512;
    pub const MAX_TIP_BYTES: usize = 320;
    pub const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
    pub const MAX_INIT_BYTES: u64 = 1024 * 1024;
    pub const MAX_TARGET_DURATION_S: u64 = 60;
    /// `channels` of an audio rendition is 1..=64 (above: `malformed`, like target_duration).
    pub const MAX_CHANNELS: u64 = 64;
}

/// How a rendition's segments are packaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    /// CMAF / fragmented MP4: an init segment (`.mp4`) plus media segments (`.m4s`).
    Fmp4,
    /// MPEG-TS segments (`.ts`), no init segment.
    Ts,
}

impl Container {
    /// File extension of a media segment.
    pub fn media_ext(self) -> &'static str {
        match self {
            Container::Fmp4 => "m4s",
            Container::Ts => "ts",
        }
    }
}

/// What a rendition is in the master playlist (protocol 1.4). A rendition without a kind is a
/// variant stream (`EXT-X-STREAM-INF`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RenditionKind {
    /// An alternative audio rendition (`EXT-X-MEDIA:TYPE=AUDIO`) that every variant plays with,
    /// for a stream whose audio and video are separate renditions (demuxed CMAF).
    Audio,
}

/// File extension of an init segment.
pub const INIT_EXT: &str = "mp4";

/// A blob addressed by hash, with its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    pub hash: Hash,
    pub size: u64,
}

/// One media segment in a rendition's live window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRef {
    /// HLS media sequence number.
    pub seq: u64,
    /// Duration in microseconds.
    pub dur_us: u64,
    pub hash: Hash,
    pub size: u64,
    /// An EXT-X-DISCONTINUITY precedes this segment.
    pub disc: bool,
    /// EXT-X-PROGRAM-DATE-TIME of the segment's first sample, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdt_ms: Option<u64>,
    /// Hash of the init segment (EXT-X-MAP) this segment needs; absent for MPEG-TS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Hash>,
    /// `Some(false)`: the segment does not begin with a keyframe (protocol 1.3; older verifiers
    /// refuse the field as unknown), and the master omits EXT-X-INDEPENDENT-SEGMENTS. Signers
    /// write only `false`; absent (or `true`) means it does. Kept as given, so the bytes of a
    /// log entry re-encode to themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub independent: Option<bool>,
}

impl SegmentRef {
    /// Whether the segment begins with a keyframe (absent: yes).
    pub fn is_independent(&self) -> bool {
        self.independent != Some(false)
    }
}

/// One rendition's state in a MANIFEST_ROOT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendition {
    pub name: String,
    pub container: Container,
    /// EXT-X-TARGETDURATION, whole seconds.
    pub target_duration: u64,
    /// EXT-X-DISCONTINUITY-SEQUENCE of the window's first segment.
    pub disc_seq: u64,
    /// The current init segment (the newest segment's), absent for MPEG-TS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<BlobRef>,
    /// The live window, oldest first, consecutive `seq`.
    pub segments: Vec<SegmentRef>,
    /// The broadcast of this rendition has ended (EXT-X-ENDLIST).
    pub ended: bool,
    /// RFC 6381 codecs for the master playlist's CODECS attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codecs: Option<String>,
    /// Peak segment bit rate (RFC 8216 §4.3.4.2) for BANDWIDTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
    /// Average segment bit rate for AVERAGE-BANDWIDTH (protocol 1.1; older verifiers refuse it
    /// as an unknown field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_bandwidth: Option<u64>,
    /// `WIDTHxHEIGHT` for RESOLUTION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Frames per 1000 seconds for FRAME-RATE (29.97 fps = 29970).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate_milli: Option<u64>,
    /// `Some(Audio)`: an alternative audio rendition, not a variant (protocol 1.4; older
    /// verifiers refuse the field as unknown). Any other value fails to decode (`malformed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RenditionKind>,
    /// Audio channel count for CHANNELS, 1..=64, only with `kind: audio` (protocol 1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u64>,
    /// `PART-TARGET` of the LL-HLS playlist, microseconds, when the signer signs PARTs (§16)
    /// of this rendition (protocol 1.5; older verifiers refuse the field as unknown). Only in
    /// an fMP4 rendition, 1..=10,000,000. Every node renders the same LL-HLS playlist from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_target_us: Option<u64>,
}

impl Rendition {
    /// A rendition with an empty window, not ended, and none of the optional fields.
    pub fn new(name: impl Into<String>, container: Container, target_duration: u64) -> Self {
        Rendition {
            name: name.into(),
            container,
            target_duration,
            disc_seq: 0,
            init: None,
            segments: Vec::new(),
            ended: false,
            codecs: None,
            bandwidth: None,
            average_bandwidth: None,
            resolution: None,
            frame_rate_milli: None,
            kind: None,
            channels: None,
            part_target_us: None,
        }
    }

    /// The media sequence number of the window's first segment (or of the next segment when empty).
    pub fn media_sequence(&self, next_seq: u64) -> u64 {
        self.segments.first().map_or(next_seq, |s| s.seq)
    }
}

/// The head of the append-only Merkle log over every segment so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogHead {
    pub size: u64,
    pub root: Hash,
}

/// MANIFEST_ROOT: the signed, sequence-numbered state of a stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRoot {
    pub stream: StreamId,
    pub seq: u64,
    pub time_ms: u64,
    /// `id` of the previous MANIFEST_ROOT; absent only on the first (seq 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Hash>,
    pub renditions: Vec<Rendition>,
    pub log: LogHead,
}

impl ManifestRoot {
    pub fn rendition(&self, name: &str) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.name == name)
    }
}

/// A rendition as described in STREAM_ANNOUNCE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceRendition {
    pub name: String,
    pub codecs: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate_milli: Option<u64>,
}

/// Where a stream can be found. Hints are not trusted: whatever they lead to is verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hints {
    /// HTTP origins: base URLs under which `/streams/<id>/` is served.
    pub http: Vec<String>,
    /// libp2p multiaddrs with `/p2p/<peer id>`.
    pub libp2p: Vec<String>,
    /// WebTorrent trackers (`ws://` or `wss://`).
    pub trackers: Vec<String>,
    /// MoQ relays or servers (`https://` URLs).
    pub moq: Vec<String>,
}

/// STREAM_ANNOUNCE: the signed, sequence-numbered description of a stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamAnnounce {
    pub stream: StreamId,
    pub seq: u64,
    pub time_ms: u64,
    pub expires_ms: u64,
    pub title: String,
    pub renditions: Vec<AnnounceRendition>,
    pub hints: Hints,
    /// Lightning address (`name@host`) for tips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip: Option<String>,
}

/// What the envelope needs to know about an object type.
pub trait SignedObject: Serialize + DeserializeOwned + Clone {
    /// The wire `type` value.
    const TYPE: &'static str;
    /// Domain-separation prefix of the signing input.
    const DOMAIN: &'static [u8];
    /// Largest wire encoding accepted.
    const MAX_BYTES: usize;
    fn stream(&self) -> &StreamId;
    fn seq(&self) -> u64;
    /// Check limits and invariants that the type system does not.
    fn validate(&self) -> Result<()>;
}

fn check_len(what: &str, s: &str, limit: usize) -> Result<()> {
    if s.len() > limit {
        return Err(Error::oversize(what, s.len(), limit));
    }
    Ok(())
}

fn check_count(what: &str, n: usize, limit: usize) -> Result<()> {
    if n > limit {
        return Err(Error::oversize(what, n, limit));
    }
    Ok(())
}

/// Rendition names end up in file names and URLs: 1..=32 of `[A-Za-z0-9_-]`.
pub fn check_rendition_name(name: &str) -> Result<()> {
    check_len("rendition name", name, limits::MAX_NAME_BYTES)?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::Malformed(format!(
            "rendition name {name:?} must be 1-32 of [A-Za-z0-9_-]"
        )));
    }
    if name == "master" {
        return Err(Error::Malformed(
            "rendition name \"master\" is reserved for the master playlist".into(),
        ));
    }
    Ok(())
}

fn check_attr(what: &str, s: &str, limit: usize) -> Result<()> {
    check_len(what, s, limit)?;
    // Rendered inside a quoted playlist attribute: no quotes, no control characters.
    if s.bytes().any(|b| b == b'"' || b < 0x20 || b == 0x7f) {
        return Err(Error::Malformed(format!("{what} has a quote or control character")));
    }
    Ok(())
}

fn check_resolution(r: &Option<String>) -> Result<()> {
    if let Some(r) = r {
        let ok = r.split_once('x').is_some_and(|(w, h)| {
            !w.is_empty()
                && !h.is_empty()
                && w.len() <= 5
                && h.len() <= 5
                && (w.bytes().chain(h.bytes())).all(|b| b.is_ascii_digit())
        });
        if !ok {
            return Err(Error::Malformed(format!("resolution {r:?} is not WIDTHxHEIGHT")));
        }
    }
    Ok(())
}

impl SignedObject for ManifestRoot {
    const TYPE: &'static str = "manifest_root";
    const DOMAIN: &'static [u8] = b"hlswarm-v1/manifest_root\0";
    const MAX_BYTES: usize = limits::MAX_MANIFEST_BYTES;

    fn stream(&self) -> &StreamId {
        &self.stream
    }
    fn seq(&self) -> u64 {
        self.seq
    }

    fn validate(&self) -> Result<()> {
        check_count("renditions", self.renditions.len(), limits::MAX_RENDITIONS)?;
        if (self.seq == 0) != self.prev.is_none() {
            return Err(Error::Malformed("prev must be absent exactly when seq is 0".into()));
        }
        let mut names = BTreeSet::new();
        for r in &self.renditions {
            check_rendition_name(&r.name)?;
            if !names.insert(r.name.as_str()) {
                return Err(Error::Malformed(format!("rendition {:?} listed twice", r.name)));
            }
            check_count("window segments", r.segments.len(), limits::MAX_WINDOW_SEGMENTS)?;
            if r.target_duration == 0 || r.target_duration > limits::MAX_TARGET_DURATION_S {
                return Err(Error::Malformed(format!(
                    "target_duration {} outside 1..=60",
                    r.target_duration
                )));
            }
            if let Some(c) = &r.codecs {
                check_attr("codecs", c, limits::MAX_CODECS_BYTES)?;
            }
            check_resolution(&r.resolution)?;
            if let Some(ch) = r.channels {
                if r.kind != Some(RenditionKind::Audio) {
                    return Err(Error::Malformed(format!(
                        "rendition {:?}: channels without kind audio",
                        r.name
                    )));
                }
                if ch == 0 || ch > limits::MAX_CHANNELS {
                    return Err(Error::Malformed(format!(
                        "rendition {:?}: channels {ch} outside 1..=64",
                        r.name
                    )));
                }
            }
            check_part_target(r)?;
            if let Some(init) = &r.init
                && init.size > limits::MAX_INIT_BYTES
            {
                return Err(Error::Oversize {
                    what: "init segment".into(),
                    actual: init.size,
                    limit: limits::MAX_INIT_BYTES,
                });
            }
            if (r.container == Container::Ts) && r.init.is_some() {
                return Err(Error::Malformed("an MPEG-TS rendition has no init segment".into()));
            }
            let max_dur_us = (r.target_duration * 1_000_000) + 500_000;
            for (i, s) in r.segments.iter().enumerate() {
                if i > 0 && s.seq != r.segments[i - 1].seq + 1 {
                    return Err(Error::Malformed(format!(
                        "rendition {:?}: window sequence numbers are not consecutive",
                        r.name
                    )));
                }
                if s.dur_us == 0 || s.dur_us >= max_dur_us {
                    return Err(Error::Malformed(format!(
                        "segment {} duration {} us does not round to at most target duration {} s",
                        s.seq, s.dur_us, r.target_duration
                    )));
                }
                if s.size > limits::MAX_SEGMENT_BYTES {
                    return Err(Error::Oversize {
                        what: "segment".into(),
                        actual: s.size,
                        limit: limits::MAX_SEGMENT_BYTES,
                    });
                }
                if (r.container == Container::Fmp4) != s.init.is_some() {
                    return Err(Error::Malformed(format!(
                        "segment {}: init is required for fmp4 and absent for ts",
                        s.seq
                    )));
                }
            }
        }
        Ok(())
    }
}

impl SignedObject for StreamAnnounce {
    const TYPE: &'static str = "stream_announce";
    const DOMAIN: &'static [u8] = b"hlswarm-v1/stream_announce\0";
    const MAX_BYTES: usize = limits::MAX_ANNOUNCE_BYTES;

    fn stream(&self) -> &StreamId {
        &self.stream
    }
    fn seq(&self) -> u64 {
        self.seq
    }

    fn validate(&self) -> Result<()> {
        check_len("title", &self.title, limits::MAX_TITLE_BYTES)?;
        check_count("renditions", self.renditions.len(), limits::MAX_RENDITIONS)?;
        for r in &self.renditions {
            check_rendition_name(&r.name)?;
            check_attr("codecs", &r.codecs, limits::MAX_CODECS_BYTES)?;
            check_resolution(&r.resolution)?;
        }
        for (kind, list) in [
            ("http hints", &self.hints.http),
            ("libp2p hints", &self.hints.libp2p),
            ("tracker hints", &self.hints.trackers),
            ("moq hints", &self.hints.moq),
        ] {
            check_count(kind, list.len(), limits::MAX_HINTS_PER_KIND)?;
            for h in list {
                check_len(kind, h, limits::MAX_HINT_BYTES)?;
            }
        }
        if let Some(tip) = &self.tip {
            check_len("tip", tip, limits::MAX_TIP_BYTES)?;
        }
        if self.expires_ms < self.time_ms {
            return Err(Error::Malformed("expires_ms is before time_ms".into()));
        }
        Ok(())
    }
}

impl StreamAnnounce {
    /// `Error::Expired` if `now_ms` is past the announce's expiry.
    pub fn check_fresh(&self, now_ms: u64) -> Result<()> {
        if now_ms > self.expires_ms {
            return Err(Error::Expired {
                expires_ms: self.expires_ms,
                now_ms,
            });
        }
        Ok(())
    }
}

/// A verified (or freshly signed) object with its exact wire bytes.
#[derive(Clone, Debug)]
pub struct Signed<T> {
    pub body: T,
    /// BLAKE3 of the signing input (domain prefix + canonical object without `sig`). Chains and
    /// equivocation evidence refer to objects by this id.
    pub id: Hash,
    sig: [u8; 64],
    wire: Arc<[u8]>,
}

impl<T: SignedObject> Signed<T> {
    /// Sign `body` with `key`. The key must be the stream's.
    pub fn sign(body: T, key: &StreamKey) -> Result<Self> {
        if *body.stream() != key.stream_id() {
            return Err(Error::WrongKey {
                expected: body.stream().to_string(),
                found: key.stream_id().to_string(),
            });
        }
        body.validate()?;
        let mut obj = envelope(&body)?;
        let message = signing_input::<T>(&obj)?;
        let sig = key.sign(&message).to_bytes();
        obj.insert("sig".into(), Value::String(URL_SAFE_NO_PAD.encode(sig)));
        let wire: Arc<[u8]> = to_canonical(&Value::Object(obj))?.into();
        if wire.len() > T::MAX_BYTES {
            return Err(Error::oversize(T::TYPE, wire.len(), T::MAX_BYTES));
        }
        Ok(Signed {
            body,
            id: Hash::of(&message),
            sig,
            wire,
        })
    }

    /// Decode and verify wire bytes against the stream id they name.
    pub fn from_wire(bytes: &[u8]) -> Result<Self> {
        Self::decode(bytes, None)
    }

    /// Decode and verify wire bytes, which must be signed by `expected`.
    pub fn verify(bytes: &[u8], expected: &StreamId) -> Result<Self> {
        Self::decode(bytes, Some(expected))
    }

    fn decode(bytes: &[u8], expected: Option<&StreamId>) -> Result<Self> {
        if bytes.len() > T::MAX_BYTES {
            return Err(Error::oversize(T::TYPE, bytes.len(), T::MAX_BYTES));
        }
        let Value::Object(mut obj) = from_canonical(bytes)? else {
            return Err(Error::Malformed("not a JSON object".into()));
        };
        match obj.get("v").and_then(Value::as_u64) {
            Some(VERSION) => {}
            Some(v) => return Err(Error::UnknownVersion(v)),
            None => return Err(Error::Malformed("missing version `v`".into())),
        }
        match obj.get("type").and_then(Value::as_str) {
            Some(t) if t == T::TYPE => {}
            other => {
                return Err(Error::WrongType {
                    expected: T::TYPE,
                    found: other.unwrap_or("(none)").to_string(),
                });
            }
        }
        let sig = match obj.remove("sig") {
            Some(Value::String(s)) => decode_sig(&s)?,
            _ => return Err(Error::Malformed("missing signature `sig`".into())),
        };
        let message = signing_input::<T>(&obj)?;
        obj.remove("v");
        obj.remove("type");
        let body: T =
            serde_json::from_value(Value::Object(obj)).map_err(|e| Error::Malformed(format!("{}: {e}", T::TYPE)))?;
        if let Some(expected) = expected
            && body.stream() != expected
        {
            return Err(Error::WrongKey {
                expected: expected.to_string(),
                found: body.stream().to_string(),
            });
        }
        body.validate()?;
        let key = body.stream().verifying_key()?;
        key.verify_strict(&message, &Signature::from_bytes(&sig))
            .map_err(|_| Error::BadSignature { object: T::TYPE })?;
        Ok(Signed {
            body,
            id: Hash::of(&message),
            sig,
            wire: bytes.into(),
        })
    }
}

impl<T> Signed<T> {
    /// The canonical JSON bytes as sent on every transport.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The wire bytes, shared.
    pub fn wire_arc(&self) -> Arc<[u8]> {
        self.wire.clone()
    }

    pub fn signature(&self) -> &[u8; 64] {
        &self.sig
    }
}

/// Sign an arbitrary JSON object as type `T` without validating it: for test vectors and tests
/// that need validly signed but otherwise invalid objects. Returns the canonical wire bytes.
#[doc(hidden)]
/// §5.4 step 3.8 (protocol 1.5): `part_target_us` only in an fMP4 rendition, 1..=10 s.
pub(crate) fn check_part_target(r: &Rendition) -> Result<()> {
    let Some(t) = r.part_target_us else {
        return Ok(());
    };
    if r.container != Container::Fmp4 {
        return Err(Error::Malformed(format!(
            "rendition {:?}: part_target_us in a rendition that is not fmp4",
            r.name
        )));
    }
    if t == 0 || t > u64::from(crate::part::MAX_PART_DUR_US) {
        return Err(Error::Malformed(format!(
            "rendition {:?}: part_target_us {t} outside 1..=10000000",
            r.name
        )));
    }
    Ok(())
}

pub fn sign_raw<T: SignedObject>(mut obj: serde_json::Map<String, Value>, key: &StreamKey) -> Result<Vec<u8>> {
    obj.remove("sig");
    let message = signing_input::<T>(&obj)?;
    obj.insert(
        "sig".into(),
        Value::String(URL_SAFE_NO_PAD.encode(key.sign(&message).to_bytes())),
    );
    to_canonical(&Value::Object(obj))
}

/// The object as a JSON map with `v` and `type`, without `sig`.
#[doc(hidden)]
pub fn to_envelope<T: SignedObject>(body: &T) -> Result<serde_json::Map<String, Value>> {
    envelope(body)
}

fn envelope<T: SignedObject>(body: &T) -> Result<serde_json::Map<String, Value>> {
    let Value::Object(mut obj) = serde_json::to_value(body).map_err(|e| Error::Malformed(e.to_string()))? else {
        return Err(Error::Malformed("object did not serialize to a JSON object".into()));
    };
    obj.insert("v".into(), Value::from(VERSION));
    obj.insert("type".into(), Value::from(T::TYPE));
    Ok(obj)
}

/// DOMAIN || canonical(object without `sig`).
fn signing_input<T: SignedObject>(obj: &serde_json::Map<String, Value>) -> Result<Vec<u8>> {
    let canonical = to_canonical(&Value::Object(obj.clone()))?;
    let mut message = Vec::with_capacity(T::DOMAIN.len() + canonical.len());
    message.extend_from_slice(T::DOMAIN);
    message.extend_from_slice(&canonical);
    Ok(message)
}

fn decode_sig(s: &str) -> Result<[u8; 64]> {
    if s.len() != 86 {
        return Err(Error::Malformed("signature must be 86 base64url characters".into()));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| Error::Malformed(format!("signature: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| Error::Malformed("signature must be 64 bytes".into()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Hash, LogHead, vectors::test_key};

    fn code(r: Result<Signed<ManifestRoot>>) -> &'static str {
        r.map_or_else(|e| e.code(), |_| "ok")
    }

    /// As web-client/test/verifier.test.js: an unknown kind fails decoding (before the
    /// expected key and the invariants), a bad channel count is an invariant.
    #[test]
    fn rendition_kind_and_channels_in_the_reference_order() {
        let key = test_key("kind");
        let other = test_key("other");
        let rendition = |name: &str| Rendition::new(name, Container::Ts, 2);
        let verify = |stream: StreamId, count: usize, fields: serde_json::Value| {
            let body = ManifestRoot {
                stream,
                seq: 0,
                time_ms: 0,
                prev: None,
                renditions: (0..count).map(|i| rendition(&format!("r{i}"))).collect(),
                log: LogHead {
                    size: 0,
                    root: Hash::of(b""),
                },
            };
            let mut env = to_envelope(&body).unwrap();
            for (k, v) in fields.as_object().unwrap() {
                env["renditions"][0][k] = v.clone();
            }
            code(Signed::<ManifestRoot>::verify(
                &sign_raw::<ManifestRoot>(env, &key).unwrap(),
                &key.stream_id(),
            ))
        };
        let (mine, theirs) = (key.stream_id(), other.stream_id());
        assert_eq!(verify(mine, 1, json!({"kind": "audio", "channels": 2})), "ok");
        assert_eq!(verify(mine, 1, json!({"kind": "audio"})), "ok");
        assert_eq!(verify(mine, 1, json!({"kind": "video"})), "malformed");
        assert_eq!(verify(mine, 1, json!({"kind": "Audio"})), "malformed");
        assert_eq!(verify(mine, 1, json!({"channels": 2})), "malformed");
        assert_eq!(verify(mine, 1, json!({"kind": "audio", "channels": 0})), "malformed");
        assert_eq!(verify(mine, 1, json!({"kind": "audio", "channels": 64})), "ok");
        assert_eq!(verify(mine, 1, json!({"kind": "audio", "channels": 65})), "malformed");
        assert_eq!(verify(theirs, 1, json!({"kind": "video"})), "malformed");
        assert_eq!(verify(theirs, 1, json!({"kind": "audio", "channels": 65})), "wrong_key");
        assert_eq!(verify(mine, 17, json!({"kind": "video"})), "malformed");
        assert_eq!(verify(mine, 17, json!({"kind": "audio", "channels": 65})), "oversize");
    }
}
