//! PART: the signed statement of one LL-HLS part (a CMAF chunk) of one rendition, in the
//! fixed binary layout of docs/design/parts.md, and `PartChain`, the replay, rollback and
//! equivocation rules a consumer applies per rendition. Not yet produced by the node: this is
//! the wire format the signed-parts work builds on (PROTOCOL.md gets it with its vectors when
//! the first part is signed).
//!
//! ```text
//! type 0x01 | version 1 | flags (bit 0 independent, bit 1 prev) | name_len | name
//! | seq u64 | part u16 | dur_us u32 | size u32 | time_ms u64 | hash [32] | prev [32]? | sig [64]
//! signing input = "hlswarm-v1/part" 0x00 || stream id (32 bytes) || everything before sig
//! ```

use std::collections::BTreeMap;

use ed25519_dalek::Signature;

use crate::objects::check_rendition_name;
use crate::{Error, Hash, Result, StreamId, StreamKey};

/// Domain-separation prefix of a PART's signing input.
pub const DOMAIN: &[u8] = b"hlswarm-v1/part\0";
/// The `type` byte.
pub const TYPE: u8 = 0x01;
/// The `version` byte.
pub const VERSION: u8 = 1;
/// Largest part accepted (bytes).
pub const MAX_PART_BYTES: u32 = 16 * 1024 * 1024;
/// Longest part accepted (µs): a part is well under a segment, whose target is at most 60 s.
pub const MAX_PART_DUR_US: u32 = 10_000_000;
/// Largest wire encoding: a 32-byte name and `prev`.
pub const MAX_WIRE_BYTES: usize = 4 + 32 + FIELDS + 32 + 32 + 64;
/// Largest seq and time_ms: 2^53 - 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// seq, part, dur_us, size, time_ms.
const FIELDS: usize = 8 + 2 + 4 + 4 + 8;
const FLAG_INDEPENDENT: u8 = 0b01;
const FLAG_PREV: u8 = 0b10;
const NAME: &str = "part";

/// What a PART says about one part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The rendition (track) the part belongs to.
    pub rendition: String,
    /// Media sequence number of its segment.
    pub seq: u64,
    /// Index of the part in its segment, from 0.
    pub part: u16,
    pub dur_us: u32,
    pub size: u32,
    /// Signing time, Unix milliseconds.
    pub time_ms: u64,
    /// BLAKE3 of the part's bytes.
    pub hash: Hash,
    /// The part begins with a keyframe (always, for audio).
    pub independent: bool,
    /// Id of the previous PART of this rendition (absent for the first of a publish).
    pub prev: Option<Hash>,
}

impl Part {
    fn validate(&self) -> Result<()> {
        check_rendition_name(&self.rendition)?;
        if self.size == 0 || self.dur_us == 0 {
            return Err(Error::Malformed("part size and duration must be above 0".into()));
        }
        if self.size > MAX_PART_BYTES {
            return Err(Error::oversize(
                "part size",
                self.size as usize,
                MAX_PART_BYTES as usize,
            ));
        }
        if self.dur_us > MAX_PART_DUR_US {
            return Err(Error::Malformed(format!(
                "part duration {} us above {MAX_PART_DUR_US}",
                self.dur_us
            )));
        }
        // As every integer of the JSON objects (PROTOCOL §4), so JavaScript holds them exactly.
        if self.seq > MAX_SAFE_INTEGER || self.time_ms > MAX_SAFE_INTEGER {
            return Err(Error::Malformed("part seq or time_ms above 2^53 - 1".into()));
        }
        Ok(())
    }

    /// The bytes before the signature, unchecked (test vectors sign bad ones with `sign_raw`).
    pub(crate) fn body(&self) -> Vec<u8> {
        let mut flags = 0;
        if self.independent {
            flags |= FLAG_INDEPENDENT;
        }
        if self.prev.is_some() {
            flags |= FLAG_PREV;
        }
        let mut b = Vec::with_capacity(MAX_WIRE_BYTES);
        b.extend_from_slice(&[TYPE, VERSION, flags]);
        b.push(u8::try_from(self.rendition.len()).unwrap_or(u8::MAX));
        b.extend_from_slice(self.rendition.as_bytes());
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.part.to_be_bytes());
        b.extend_from_slice(&self.dur_us.to_be_bytes());
        b.extend_from_slice(&self.size.to_be_bytes());
        b.extend_from_slice(&self.time_ms.to_be_bytes());
        b.extend_from_slice(&self.hash.0);
        if let Some(p) = &self.prev {
            b.extend_from_slice(&p.0);
        }
        b
    }

    /// (seq, part): the order of a rendition's parts.
    pub fn position(&self) -> (u64, u16) {
        (self.seq, self.part)
    }
}

fn signing_input(stream: &StreamId, body: &[u8]) -> Vec<u8> {
    [DOMAIN, &stream.0, body].concat()
}

/// Sign arbitrary body bytes as a PART would be (no checks): for test vectors of validly
/// signed statements that break a rule.
pub(crate) fn sign_raw(body: &[u8], key: &StreamKey) -> Vec<u8> {
    let input = signing_input(&key.stream_id(), body);
    [body, &key.sign(&input).to_bytes()].concat()
}

/// A verified (or freshly signed) PART with its wire bytes and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPart {
    pub body: Part,
    /// BLAKE3 of the signing input.
    pub id: Hash,
    wire: Vec<u8>,
}

impl SignedPart {
    /// Sign `body` with the stream's key.
    pub fn sign(body: Part, key: &StreamKey) -> Result<Self> {
        body.validate()?;
        let mut wire = body.body();
        let input = signing_input(&key.stream_id(), &wire);
        wire.extend_from_slice(&key.sign(&input).to_bytes());
        Ok(SignedPart {
            body,
            id: Hash::of(&input),
            wire,
        })
    }

    /// Decode wire bytes and verify them as a PART of `stream`: size, layout, fields, then the
    /// signature (strict Ed25519), stopping at the first failure.
    pub fn verify(wire: &[u8], stream: &StreamId) -> Result<Self> {
        if wire.len() > MAX_WIRE_BYTES {
            return Err(Error::oversize(NAME, wire.len(), MAX_WIRE_BYTES));
        }
        let mut r = Reader { b: wire, at: 0 };
        let (ty, version, flags) = (r.u8()?, r.u8()?, r.u8()?);
        if ty != TYPE {
            return Err(Error::WrongType {
                expected: NAME,
                found: format!("0x{ty:02x}"),
            });
        }
        if version != VERSION {
            return Err(Error::UnknownVersion(u64::from(version)));
        }
        if flags & !(FLAG_INDEPENDENT | FLAG_PREV) != 0 {
            return Err(Error::Malformed(format!("part flags 0x{flags:02x}: reserved bits set")));
        }
        let name_len = usize::from(r.u8()?);
        let rendition = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| Error::Malformed("part rendition name is not UTF-8".into()))?
            .to_string();
        let body = Part {
            rendition,
            seq: u64::from_be_bytes(r.array()?),
            part: u16::from_be_bytes(r.array()?),
            dur_us: u32::from_be_bytes(r.array()?),
            size: u32::from_be_bytes(r.array()?),
            time_ms: u64::from_be_bytes(r.array()?),
            hash: Hash(r.array()?),
            independent: flags & FLAG_INDEPENDENT != 0,
            prev: if flags & FLAG_PREV != 0 {
                Some(Hash(r.array()?))
            } else {
                None
            },
        };
        let signed_len = r.at;
        let sig: [u8; 64] = r.array()?;
        if r.at != wire.len() {
            return Err(Error::Malformed(format!(
                "{} bytes after the part's signature",
                wire.len() - r.at
            )));
        }
        body.validate()?;
        let input = signing_input(stream, &wire[..signed_len]);
        stream
            .verifying_key()?
            .verify_strict(&input, &Signature::from_bytes(&sig))
            .map_err(|_| Error::BadSignature { object: NAME })?;
        Ok(SignedPart {
            body,
            id: Hash::of(&input),
            wire: wire.to_vec(),
        })
    }

    /// The bytes as sent on every transport.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Check a part's bytes against this statement.
    pub fn check_bytes(&self, bytes: &[u8]) -> Result<()> {
        let got = Hash::of(bytes);
        if bytes.len() as u64 != u64::from(self.body.size) || got != self.body.hash {
            return Err(Error::HashMismatch {
                what: format!("part of {} bytes (signed: {})", bytes.len(), self.body.size),
                expected: self.body.hash.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(())
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let Some(end) = end else {
            return Err(Error::Malformed(format!("part truncated at byte {}", self.b.len())));
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }
}

/// Recent PARTs remembered per rendition, to catch equivocation (about 50 s of 200 ms parts).
const REMEMBERED: usize = 256;
/// Evidence pairs kept at most per stream.
const MAX_EVIDENCE: usize = 16;

/// Two validly signed PARTs for one position of one rendition: the key holder equivocated.
#[derive(Clone, Debug)]
pub struct PartEquivocation {
    pub first: SignedPart,
    pub second: SignedPart,
}

#[derive(Debug, Default)]
struct Track {
    latest: Option<SignedPart>,
    recent: BTreeMap<(u64, u16), SignedPart>,
}

/// The PARTs of one stream a consumer accepted, per rendition: verify-then-accept with the
/// rules of docs/design/parts.md (equivocation, replay, chain break; gaps allowed).
#[derive(Debug)]
pub struct PartChain {
    stream: StreamId,
    tracks: BTreeMap<String, Track>,
    evidence: Vec<PartEquivocation>,
}

impl PartChain {
    pub fn new(stream: StreamId) -> Self {
        PartChain {
            stream,
            tracks: BTreeMap::new(),
            evidence: Vec::new(),
        }
    }

    /// The latest accepted PART of `rendition`.
    pub fn latest(&self, rendition: &str) -> Option<&SignedPart> {
        self.tracks.get(rendition)?.latest.as_ref()
    }

    pub fn evidence(&self) -> &[PartEquivocation] {
        &self.evidence
    }

    /// Verify wire bytes and accept them.
    pub fn accept_wire(&mut self, wire: &[u8]) -> Result<SignedPart> {
        let p = SignedPart::verify(wire, &self.stream)?;
        self.accept(p.clone())?;
        Ok(p)
    }

    /// Accept a verified PART of this stream. Bounded: at most 16 renditions are followed
    /// (MANIFEST_ROOT's limit), a 17th is refused as `oversize`.
    pub fn accept(&mut self, p: SignedPart) -> Result<()> {
        if !self.tracks.contains_key(&p.body.rendition) && self.tracks.len() >= crate::objects::limits::MAX_RENDITIONS {
            return Err(Error::oversize(
                "renditions with parts",
                self.tracks.len() + 1,
                crate::objects::limits::MAX_RENDITIONS,
            ));
        }
        let t = self.tracks.entry(p.body.rendition.clone()).or_default();
        let pos = p.body.position();
        if let Some(seen) = t.recent.get(&pos)
            && seen.id != p.id
        {
            if self.evidence.len() < MAX_EVIDENCE {
                self.evidence.push(PartEquivocation {
                    first: seen.clone(),
                    second: p.clone(),
                });
            }
            return Err(Error::Equivocation { seq: p.body.seq });
        }
        if let Some(l) = &t.latest {
            let lpos = l.body.position();
            if pos <= lpos {
                return Err(Error::Replay {
                    seq: p.body.seq,
                    latest: l.body.seq,
                });
            }
            // The next part of the same segment must name the latest. Part 0 of the next
            // segment follows that segment's last part, which may not be the latest accepted
            // (parts are missed): it breaks the chain only by naming another part this chain
            // accepted (revision 1.5).
            let same_segment = pos == (lpos.0, lpos.1.saturating_add(1));
            let next_segment = pos == (lpos.0 + 1, 0);
            let names_older = |prev: Hash| t.recent.values().any(|r| r.id == prev);
            if p.body
                .prev
                .is_some_and(|prev| prev != l.id && (same_segment || (next_segment && names_older(prev))))
            {
                return Err(Error::ChainBreak {
                    seq: p.body.seq,
                    reason: format!("part {} names another previous part than {}", p.body.part, l.id),
                });
            }
            if p.body.time_ms < l.body.time_ms {
                return Err(Error::ChainBreak {
                    seq: p.body.seq,
                    reason: "part signing time went backwards".into(),
                });
            }
        }
        t.recent.insert(pos, p.clone());
        while t.recent.len() > REMEMBERED {
            t.recent.pop_first();
        }
        t.latest = Some(p);
        Ok(())
    }
}

#[cfg(test)]
#[path = "part_tests.rs"]
mod tests;
