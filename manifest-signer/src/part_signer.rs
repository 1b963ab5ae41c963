//! The signer side of PART statements (PROTOCOL §16): per rendition, the chain of parts signed
//! for the segment in progress, so that each statement names its predecessor, time never goes
//! back, and the segment signed later is exactly the parts signed before it. No I/O: the
//! [`crate::signer::StreamSigner`] owns one and gives it the media sequence numbers.

use std::collections::HashMap;

use crate::part::{MAX_PART_BYTES, MAX_PART_DUR_US, Part, SignedPart};
use crate::{Error, Hash, Result, StreamKey};

/// A finished part handed to the signer.
#[derive(Clone, Debug)]
pub struct NewPart {
    pub rendition: String,
    /// Index of the part in its segment, from 0; consecutive.
    pub index: u16,
    pub data: std::sync::Arc<[u8]>,
    pub duration_us: u64,
    pub independent: bool,
    /// Part 0 of a segment that begins a discontinuity or a new init segment (a new publish,
    /// new codec parameters): signed without `prev`, which tells every consumer that the
    /// segment in progress does not continue the window (PROTOCOL §10.4).
    pub fresh: bool,
}

/// What one rendition's chain stands at.
#[derive(Debug)]
struct Track {
    latest: SignedPart,
    /// BLAKE3 over the parts of `latest.body.seq` so far, in order.
    hasher: blake3::Hasher,
}

/// The PART chains of one stream.
#[derive(Debug, Default)]
pub struct PartSigner {
    tracks: HashMap<String, Track>,
}

impl PartSigner {
    /// Signs `p` as part `p.index` of the segment with media sequence number `seq`. A part that
    /// does not follow the last one signed for its rendition (the same segment and the next
    /// index, or index 0 of a later segment) is refused as `chain_break`: signing it would
    /// break every consumer's chain. Index 0 of a later segment is always accepted (a segment
    /// without parts, or parts lost with a publisher, leave the chain behind).
    pub fn sign(&mut self, key: &StreamKey, seq: u64, p: NewPart, now_ms: u64) -> Result<SignedPart> {
        let size = u32::try_from(p.data.len())
            .ok()
            .filter(|s| *s <= MAX_PART_BYTES)
            .ok_or_else(|| Error::oversize("part", p.data.len(), MAX_PART_BYTES as usize))?;
        let dur_us = u32::try_from(p.duration_us)
            .ok()
            .filter(|d| (1..=MAX_PART_DUR_US).contains(d))
            .ok_or_else(|| Error::Malformed(format!("part duration {} us", p.duration_us)))?;
        let prev = self.tracks.get(&p.rendition);
        if let Some(t) = prev {
            let (last_seq, last_part) = t.latest.body.position();
            let follows =
                (seq == last_seq && u32::from(p.index) == u32::from(last_part) + 1) || (seq > last_seq && p.index == 0);
            if !follows {
                return Err(Error::ChainBreak {
                    seq,
                    reason: format!(
                        "{} part {seq}.{} does not follow {last_seq}.{last_part}",
                        p.rendition, p.index
                    ),
                });
            }
        } else if p.index != 0 {
            return Err(Error::ChainBreak {
                seq,
                reason: format!("{} part {seq}.{} without part 0", p.rendition, p.index),
            });
        }
        let body = Part {
            rendition: p.rendition.clone(),
            seq,
            part: p.index,
            dur_us,
            size,
            time_ms: prev.map_or(now_ms, |t| now_ms.max(t.latest.body.time_ms)),
            hash: Hash::of(&p.data),
            independent: p.independent,
            prev: prev.filter(|_| !(p.fresh && p.index == 0)).map(|t| t.latest.id),
        };
        let signed = SignedPart::sign(body, key)?;
        let mut hasher = match self.tracks.remove(&p.rendition) {
            Some(t) if t.latest.body.seq == seq => t.hasher,
            _ => blake3::Hasher::new(),
        };
        hasher.update(&p.data);
        self.tracks.insert(
            p.rendition,
            Track {
                latest: signed.clone(),
                hasher,
            },
        );
        Ok(signed)
    }

    /// Checks a segment about to be signed against the parts signed for it: when its rendition
    /// has parts of `seq`, the segment must be exactly their concatenation (its BLAKE3 equal to
    /// theirs), or the key holder would sign two different things; `chain_break` otherwise.
    pub fn check_segment(&self, rendition: &str, seq: u64, hash: &Hash) -> Result<()> {
        match self.tracks.get(rendition) {
            Some(t) if t.latest.body.seq == seq => {
                let parts = Hash(*t.hasher.finalize().as_bytes());
                if parts == *hash {
                    Ok(())
                } else {
                    Err(Error::ChainBreak {
                        seq,
                        reason: format!("segment {rendition} {seq} is not the concatenation of its signed parts"),
                    })
                }
            }
            _ => Ok(()),
        }
    }

    /// The last part signed for `rendition`.
    pub fn latest(&self, rendition: &str) -> Option<&SignedPart> {
        self.tracks.get(rendition).map(|t| &t.latest)
    }
}
