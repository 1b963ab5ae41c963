//! FLV video/audio tag bodies as rml_rtmp hands them over (the RTMP message payload,
//! which is an FLV tag without its 11-byte tag header).
//!
//! Video: classic AVC (CodecID 7; the non-standard CodecID 12 is read as HEVC with the same
//! layout) and Enhanced RTMP (IsExHeader bit, FourCC `avc1`, `hvc1`, `av01`; packet types
//! SequenceStart, CodedFrames, CodedFramesX, SequenceEnd, Metadata). Audio: AAC
//! (SoundFormat 10). Everything else is reported as [`Error::Unsupported`].

use bytes::Bytes;

use crate::bits::ByteReader;
use crate::codec::{self, AudioConfig, VideoCodec, VideoConfig};
use crate::error::{Error, Result};

/// One parsed video tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VideoTag {
    /// Decoder configuration (sequence header / SequenceStart).
    Config(VideoConfig),
    /// One access unit: AVCC/HVCC length-prefixed NAL units, or AV1 OBUs.
    Frame {
        codec: VideoCodec,
        keyframe: bool,
        /// Composition time offset (PTS - DTS) in milliseconds.
        cts_ms: i32,
        data: Bytes,
    },
    /// End of sequence.
    End,
    /// A tag that carries nothing to mux (command frames, metadata); the reason is logged.
    Ignored(&'static str),
}

/// One parsed audio tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AudioTag {
    Config(AudioConfig),
    /// One raw AAC access unit.
    Frame(Bytes),
}

const FOURCC_AVC: [u8; 4] = *b"avc1";
const FOURCC_HEVC: [u8; 4] = *b"hvc1";
const FOURCC_AV1: [u8; 4] = *b"av01";

/// Parses a video tag body.
pub(crate) fn parse_video(body: &Bytes) -> Result<VideoTag> {
    let mut r = ByteReader::new(body, "FLV video tag");
    let b0 = r.u8()?;
    if b0 & 0x80 != 0 {
        return parse_enhanced_video(body, b0, r);
    }
    let frame_type = b0 >> 4;
    let codec = match b0 & 0x0f {
        7 => VideoCodec::Avc,
        12 => VideoCodec::Hevc,
        id => return Err(Error::unsupported("FLV video codec", format!("CodecID {id}"))),
    };
    if frame_type == 5 {
        return Ok(VideoTag::Ignored("video info/command frame"));
    }
    let packet_type = r.u8()?;
    let cts_ms = r.i24()?;
    let offset = body.len() - r.remaining();
    match packet_type {
        0 => {
            let record = body.slice(offset..);
            Ok(VideoTag::Config(match codec {
                VideoCodec::Hevc => codec::parse_hvcc(record)?,
                _ => codec::parse_avcc(record)?,
            }))
        }
        1 => Ok(VideoTag::Frame {
            codec,
            keyframe: frame_type == 1,
            cts_ms,
            data: body.slice(offset..),
        }),
        2 => Ok(VideoTag::End),
        t => Err(Error::invalid("FLV AVCPacketType", t.to_string())),
    }
}

fn parse_enhanced_video(body: &Bytes, b0: u8, mut r: ByteReader<'_>) -> Result<VideoTag> {
    let frame_type = (b0 >> 4) & 0x07;
    let packet_type = b0 & 0x0f;
    let fourcc: [u8; 4] = r
        .bytes(4)?
        .try_into()
        .map_err(|_| Error::invalid("E-RTMP FourCC", "length"))?;
    let codec = match fourcc {
        FOURCC_AVC => VideoCodec::Avc,
        FOURCC_HEVC => VideoCodec::Hevc,
        FOURCC_AV1 => VideoCodec::Av1,
        other => {
            return Err(Error::unsupported(
                "E-RTMP video FourCC",
                String::from_utf8_lossy(&other).into_owned(),
            ));
        }
    };
    if frame_type == 5 && packet_type != 4 {
        return Ok(VideoTag::Ignored("E-RTMP command frame"));
    }
    match packet_type {
        0 => {
            let record = body.slice(body.len() - r.remaining()..);
            Ok(VideoTag::Config(match codec {
                VideoCodec::Avc => codec::parse_avcc(record)?,
                VideoCodec::Hevc => codec::parse_hvcc(record)?,
                VideoCodec::Av1 => codec::parse_av1c(record)?,
            }))
        }
        1 | 3 => {
            let cts_ms = if packet_type == 1 && codec != VideoCodec::Av1 {
                r.i24()?
            } else {
                0
            };
            Ok(VideoTag::Frame {
                codec,
                keyframe: frame_type == 1,
                cts_ms,
                data: body.slice(body.len() - r.remaining()..),
            })
        }
        2 => Ok(VideoTag::End),
        4 => Ok(VideoTag::Ignored("E-RTMP metadata")),
        5 => Ok(VideoTag::Ignored("E-RTMP MPEG2TSSequenceStart")),
        t => Err(Error::unsupported("E-RTMP video packet type", t.to_string())),
    }
}

/// Parses an audio tag body.
pub(crate) fn parse_audio(body: &Bytes) -> Result<AudioTag> {
    let mut r = ByteReader::new(body, "FLV audio tag");
    let format = r.u8()? >> 4;
    if format != 10 {
        return Err(Error::unsupported("FLV audio codec", format!("SoundFormat {format}")));
    }
    let packet_type = r.u8()?;
    let rest = body.slice(body.len() - r.remaining()..);
    match packet_type {
        0 => Ok(AudioTag::Config(codec::parse_asc(rest)?)),
        1 => Ok(AudioTag::Frame(rest)),
        t => Err(Error::invalid("AACPacketType", t.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::{avcc, hvcc};

    fn tag(head: &[u8], body: &[u8]) -> Bytes {
        let mut v = head.to_vec();
        v.extend_from_slice(body);
        Bytes::from(v)
    }

    #[test]
    fn classic_avc() {
        let t = parse_video(&tag(&[0x17, 0, 0, 0, 0], &avcc())).unwrap();
        assert!(matches!(t, VideoTag::Config(ref c) if c.codecs == "avc1.64001e"));
        let t = parse_video(&tag(&[0x27, 1, 0xff, 0xff, 0xdf], &[0, 0, 0, 1, 0x41])).unwrap();
        assert_eq!(
            t,
            VideoTag::Frame {
                codec: VideoCodec::Avc,
                keyframe: false,
                cts_ms: -33,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            }
        );
        let t = parse_video(&tag(&[0x17, 1, 0, 0, 66], &[1])).unwrap();
        assert!(matches!(
            t,
            VideoTag::Frame {
                keyframe: true,
                cts_ms: 66,
                ..
            }
        ));
        assert_eq!(parse_video(&tag(&[0x17, 2, 0, 0, 0], &[])).unwrap(), VideoTag::End);
        assert!(parse_video(&tag(&[0x12], &[])).is_err()); // Sorenson
        assert!(parse_video(&tag(&[0x17, 9, 0, 0, 0], &[])).is_err());
        assert!(matches!(
            parse_video(&tag(&[0x57], &[0])).unwrap(),
            VideoTag::Ignored(_)
        ));
    }

    #[test]
    fn enhanced() {
        // SequenceStart hvc1, key frame.
        let t = parse_video(&tag(&[0x90, b'h', b'v', b'c', b'1'], &hvcc())).unwrap();
        assert!(matches!(t, VideoTag::Config(ref c) if c.codec == VideoCodec::Hevc));
        // CodedFrames hvc1 with cts.
        let t = parse_video(&tag(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 40], &[7])).unwrap();
        assert!(matches!(t, VideoTag::Frame { cts_ms: 40, keyframe: true, ref data, .. } if data[..] == [7]));
        // CodedFramesX inter frame.
        let t = parse_video(&tag(&[0xa3, b'h', b'v', b'c', b'1'], &[8])).unwrap();
        assert!(matches!(
            t,
            VideoTag::Frame {
                cts_ms: 0,
                keyframe: false,
                ..
            }
        ));
        // av01 CodedFrames has no cts.
        let t = parse_video(&tag(&[0x91, b'a', b'v', b'0', b'1'], &[0x12, 0])).unwrap();
        assert!(matches!(t, VideoTag::Frame { codec: VideoCodec::Av1, cts_ms: 0, ref data, .. } if data.len() == 2));
        let t = parse_video(&tag(&[0x90, b'a', b'v', b'0', b'1'], &[0x81, 8, 0x0c, 0])).unwrap();
        assert!(matches!(t, VideoTag::Config(ref c) if c.codecs == "av01.0.08M.08"));
        let t = parse_video(&tag(&[0x92, b'a', b'v', b'c', b'1'], &[])).unwrap();
        assert_eq!(t, VideoTag::End);
        assert!(parse_video(&tag(&[0x90, b'v', b'p', b'0', b'9'], &[])).is_err());
        assert!(parse_video(&tag(&[0x96, b'h', b'v', b'c', b'1'], &[])).is_err());
        assert!(parse_video(&tag(&[0x91, b'h', b'v'], &[])).is_err());
    }

    #[test]
    fn aac() {
        let t = parse_audio(&tag(&[0xaf, 0], &[0x11, 0x90])).unwrap();
        assert!(matches!(t, AudioTag::Config(ref c) if c.sample_rate == 48000));
        let t = parse_audio(&tag(&[0xaf, 1], &[1, 2, 3])).unwrap();
        assert_eq!(t, AudioTag::Frame(Bytes::from_static(&[1, 2, 3])));
        assert!(parse_audio(&tag(&[0x2f], &[])).is_err()); // MP3
        assert!(parse_audio(&tag(&[0xaf], &[])).is_err());
    }

    #[test]
    fn never_panics_on_any_short_input() {
        // Exhaustive over all 1- and 2-byte inputs, plus every prefix of valid tags.
        for a in 0..=255u8 {
            let _ = parse_video(&Bytes::from(vec![a]));
            let _ = parse_audio(&Bytes::from(vec![a]));
            for b in 0..=255u8 {
                let _ = parse_video(&Bytes::from(vec![a, b]));
                let _ = parse_audio(&Bytes::from(vec![a, b, 0x12]));
            }
        }
        let full = tag(&[0x17, 0, 0, 0, 0], &avcc());
        for n in 0..full.len() {
            let _ = parse_video(&full.slice(..n));
        }
        let full = tag(&[0x90, b'h', b'v', b'c', b'1'], &hvcc());
        for n in 0..full.len() {
            let _ = parse_video(&full.slice(..n));
        }
    }
}
