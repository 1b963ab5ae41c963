//! Decoder configuration records carried in FLV sequence headers:
//! AVCDecoderConfigurationRecord (+ SPS), HEVCDecoderConfigurationRecord (+ SPS),
//! AV1CodecConfigurationRecord and AAC AudioSpecificConfig. Each parser is bounded and
//! returns an error on malformed input; none panics.

use bytes::Bytes;

use crate::bits::{BitReader, ByteReader, unescape_rbsp};
use crate::error::{Error, Result};

/// Largest accepted configuration record (a sane record is well under 1 KiB).
const MAX_RECORD: usize = 64 * 1024;

/// Video codec of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 / AVC.
    Avc,
    /// H.265 / HEVC.
    Hevc,
    /// AV1.
    Av1,
}

/// A parsed video decoder configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VideoConfig {
    pub codec: VideoCodec,
    /// The record exactly as received (avcC / hvcC / av1C box payload).
    pub record: Bytes,
    /// RFC 6381 codecs string, e.g. `avc1.64001f`.
    pub codecs: String,
    /// Coded picture size after cropping; 0 when unknown (AV1 today).
    pub width: u32,
    pub height: u32,
    /// NAL unit length field size (AVC/HEVC); 0 for AV1.
    pub nal_length_size: u8,
    /// Parameter set NAL units in the order they must be sent in Annex B (VPS, SPS, PPS).
    pub parameter_sets: Vec<Bytes>,
}

/// A parsed AAC AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AudioConfig {
    /// The AudioSpecificConfig bytes exactly as received.
    pub asc: Bytes,
    pub object_type: u8,
    pub sample_rate: u32,
    /// Sampling frequency index (15 when given explicitly).
    pub sr_index: u8,
    pub channels: u8,
    pub codecs: String,
}

fn check_size(record: &[u8], what: &'static str) -> Result<()> {
    if record.len() > MAX_RECORD {
        return Err(Error::Limit {
            what,
            got: record.len(),
            max: MAX_RECORD,
        });
    }
    Ok(())
}

/// Parses an AVCDecoderConfigurationRecord.
pub(crate) fn parse_avcc(record: Bytes) -> Result<VideoConfig> {
    check_size(&record, "avcC")?;
    let mut r = ByteReader::new(&record, "avcC");
    let version = r.u8()?;
    if version != 1 {
        return Err(Error::invalid("avcC", format!("version {version}")));
    }
    r.bytes(3)?; // profile, compatibility, level (taken from the SPS below)
    let nal_length_size = (r.u8()? & 0x03) + 1;
    let num_sps = usize::from(r.u8()? & 0x1f);
    let mut parameter_sets = Vec::new();
    for _ in 0..num_sps {
        let len = usize::from(r.u16()?);
        parameter_sets.push(Bytes::copy_from_slice(r.bytes(len)?));
    }
    let num_pps = usize::from(r.u8()?);
    for _ in 0..num_pps {
        let len = usize::from(r.u16()?);
        parameter_sets.push(Bytes::copy_from_slice(r.bytes(len)?));
    }
    let sps = parameter_sets.first().ok_or_else(|| Error::invalid("avcC", "no SPS"))?;
    let info = parse_avc_sps(sps)?;
    Ok(VideoConfig {
        codec: VideoCodec::Avc,
        codecs: format!("avc1.{:02x}{:02x}{:02x}", info.profile, info.constraints, info.level),
        width: info.width,
        height: info.height,
        nal_length_size,
        parameter_sets,
        record,
    })
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AvcSpsInfo {
    pub profile: u8,
    pub constraints: u8,
    pub level: u8,
    pub width: u32,
    pub height: u32,
}

/// Parses an H.264 SPS NAL unit (with its one-byte NAL header) for size and profile.
pub(crate) fn parse_avc_sps(nal: &[u8]) -> Result<AvcSpsInfo> {
    let rbsp = unescape_rbsp(nal);
    let mut hdr = ByteReader::new(&rbsp, "SPS");
    let nal_type = hdr.u8()? & 0x1f;
    if nal_type != 7 {
        return Err(Error::invalid("SPS", format!("NAL type {nal_type}")));
    }
    let profile = hdr.u8()?;
    let constraints = hdr.u8()?;
    let level = hdr.u8()?;
    let mut b = BitReader::new(hdr.rest(), "SPS");
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = b.ue()?;
        if chroma_format_idc == 3 {
            b.bit()?; // separate_colour_plane_flag
        }
        b.ue()?; // bit_depth_luma_minus8
        b.ue()?; // bit_depth_chroma_minus8
        b.bit()?; // qpprime_y_zero_transform_bypass_flag
        if b.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.flag()? {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            let delta = b.se()?;
                            next = (last + delta + 256).rem_euclid(256);
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    match b.ue()? {
        0 => {
            b.ue()?;
        }
        1 => {
            b.bit()?;
            b.se()?;
            b.se()?;
            let n = b.ue()?;
            if n > 255 {
                return Err(Error::invalid("SPS", "too many ref frames in POC cycle"));
            }
            for _ in 0..n {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(b.ue()?) + 1;
    let height_units = u64::from(b.ue()?) + 1;
    let frame_mbs_only = u64::from(b.bit()?);
    if frame_mbs_only == 0 {
        b.bit()?; // mb_adaptive_frame_field_flag
    }
    b.bit()?; // direct_8x8_inference_flag
    let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
    if b.flag()? {
        cl = u64::from(b.ue()?);
        cr = u64::from(b.ue()?);
        ct = u64::from(b.ue()?);
        cb = u64::from(b.ue()?);
    }
    let (unit_x, unit_y) = match chroma_format_idc {
        1 => (2, 2 * (2 - frame_mbs_only)),
        2 => (2, 2 - frame_mbs_only),
        _ => (1, 2 - frame_mbs_only),
    };
    let width = (width_mbs * 16).saturating_sub(unit_x * (cl + cr));
    let height = ((2 - frame_mbs_only) * height_units * 16).saturating_sub(unit_y * (ct + cb));
    Ok(AvcSpsInfo {
        profile,
        constraints,
        level,
        width: u32::try_from(width).map_err(|_| Error::invalid("SPS", "width"))?,
        height: u32::try_from(height).map_err(|_| Error::invalid("SPS", "height"))?,
    })
}

/// Parses an HEVCDecoderConfigurationRecord.
pub(crate) fn parse_hvcc(record: Bytes) -> Result<VideoConfig> {
    check_size(&record, "hvcC")?;
    let mut r = ByteReader::new(&record, "hvcC");
    let version = r.u8()?;
    if version != 1 {
        return Err(Error::invalid("hvcC", format!("version {version}")));
    }
    let b = r.u8()?;
    let (space, tier, profile_idc) = (b >> 6, (b >> 5) & 1, b & 0x1f);
    let compat = r.u32()?;
    let constraints = r.bytes(6)?;
    let level = r.u8()?;
    r.bytes(8)?; // segmentation, parallelism, chroma, bit depths, frame rate
    let nal_length_size = (r.u8()? & 0x03) + 1;
    let arrays = r.u8()?;
    let mut vps = Vec::new();
    let mut sps = Vec::new();
    let mut pps = Vec::new();
    for _ in 0..arrays {
        let nal_type = r.u8()? & 0x3f;
        let count = r.u16()?;
        for _ in 0..count {
            let len = usize::from(r.u16()?);
            let nal = Bytes::copy_from_slice(r.bytes(len)?);
            match nal_type {
                32 => vps.push(nal),
                33 => sps.push(nal),
                34 => pps.push(nal),
                _ => {}
            }
        }
    }
    let (width, height) = match sps.first() {
        Some(s) => parse_hevc_sps_size(s)?,
        None => return Err(Error::invalid("hvcC", "no SPS")),
    };
    let space_str = match space {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let mut codecs = format!(
        "hvc1.{space_str}{profile_idc}.{:X}.{}{level}",
        compat.reverse_bits(),
        if tier == 1 { 'H' } else { 'L' }
    );
    let keep = constraints.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    for c in &constraints[..keep] {
        codecs.push_str(&format!(".{c:X}"));
    }
    let mut parameter_sets = vps;
    parameter_sets.append(&mut sps);
    parameter_sets.append(&mut pps);
    Ok(VideoConfig {
        codec: VideoCodec::Hevc,
        record,
        codecs,
        width,
        height,
        nal_length_size,
        parameter_sets,
    })
}

/// Picture size from an H.265 SPS NAL unit (with its two-byte NAL header).
pub(crate) fn parse_hevc_sps_size(nal: &[u8]) -> Result<(u32, u32)> {
    let rbsp = unescape_rbsp(nal);
    let mut b = BitReader::new(&rbsp, "HEVC SPS");
    b.skip(16)?; // NAL header
    b.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = b.bits(3)? as usize;
    b.bit()?; // temporal_id_nesting
    b.skip(96)?; // general profile_tier_level + general_level_idc
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1) {
        *p = (b.flag()?, b.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            b.bits(2)?;
        }
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1) {
        if profile {
            b.skip(88)?;
        }
        if level {
            b.skip(8)?;
        }
    }
    b.ue()?; // sps_seq_parameter_set_id
    let chroma = b.ue()?;
    let mut separate = false;
    if chroma == 3 {
        separate = b.flag()?;
    }
    let width = u64::from(b.ue()?);
    let height = u64::from(b.ue()?);
    let (sub_w, sub_h) = match (chroma, separate) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let (mut w, mut h) = (width, height);
    if b.flag()? {
        let l = u64::from(b.ue()?);
        let r = u64::from(b.ue()?);
        let t = u64::from(b.ue()?);
        let bo = u64::from(b.ue()?);
        w = w.saturating_sub(sub_w * (l + r));
        h = h.saturating_sub(sub_h * (t + bo));
    }
    Ok((
        u32::try_from(w).map_err(|_| Error::invalid("HEVC SPS", "width"))?,
        u32::try_from(h).map_err(|_| Error::invalid("HEVC SPS", "height"))?,
    ))
}

/// Parses an AV1CodecConfigurationRecord. Picture size is not parsed from the sequence
/// header OBU; callers fall back to the stream metadata.
pub(crate) fn parse_av1c(record: Bytes) -> Result<VideoConfig> {
    check_size(&record, "av1C")?;
    let mut r = ByteReader::new(&record, "av1C");
    let b0 = r.u8()?;
    if b0 != 0x81 {
        return Err(Error::invalid("av1C", format!("marker/version byte {b0:#x}")));
    }
    let b1 = r.u8()?;
    let b2 = r.u8()?;
    r.u8()?;
    let profile = b1 >> 5;
    let level = b1 & 0x1f;
    let tier = if b2 & 0x80 != 0 { 'H' } else { 'M' };
    let depth = match (b2 & 0x40 != 0, b2 & 0x20 != 0) {
        (false, _) => 8,
        (true, false) => 10,
        (true, true) => 12,
    };
    Ok(VideoConfig {
        codec: VideoCodec::Av1,
        codecs: format!("av01.{profile}.{level:02}{tier}.{depth:02}"),
        record,
        width: 0,
        height: 0,
        nal_length_size: 0,
        parameter_sets: Vec::new(),
    })
}

/// Sampling frequencies by index (ISO/IEC 14496-3 Table 1.18).
pub(crate) const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Parses an AAC AudioSpecificConfig.
pub(crate) fn parse_asc(asc: Bytes) -> Result<AudioConfig> {
    check_size(&asc, "AudioSpecificConfig")?;
    let mut b = BitReader::new(&asc, "AudioSpecificConfig");
    let mut object_type = b.bits(5)?;
    if object_type == 31 {
        object_type = 32 + b.bits(6)?;
    }
    if object_type == 0 {
        return Err(Error::invalid("AudioSpecificConfig", "object type 0"));
    }
    let sr_index = b.bits(4)? as u8;
    let sample_rate = if sr_index == 15 {
        b.bits(24)?
    } else {
        *AAC_RATES
            .get(usize::from(sr_index))
            .ok_or_else(|| Error::invalid("AudioSpecificConfig", "sampling index"))?
    };
    if sample_rate == 0 {
        return Err(Error::invalid("AudioSpecificConfig", "sample rate 0"));
    }
    let channels = b.bits(4)? as u8;
    Ok(AudioConfig {
        asc,
        object_type: object_type as u8,
        sample_rate,
        sr_index,
        channels,
        codecs: format!("mp4a.40.{object_type}"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SPS of x264 640x360 High@3.0 (ffmpeg testsrc2), NAL header included.
    pub(crate) const SPS_640X360: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00,
        0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
    ];
    pub(crate) const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    pub(crate) fn avcc() -> Vec<u8> {
        let mut v = vec![1, 0x64, 0x00, 0x1e, 0xff, 0xe1];
        v.extend_from_slice(&(SPS_640X360.len() as u16).to_be_bytes());
        v.extend_from_slice(SPS_640X360);
        v.push(1);
        v.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
        v.extend_from_slice(PPS);
        v
    }

    #[test]
    fn avcc_and_sps() {
        let c = parse_avcc(Bytes::from(avcc())).unwrap();
        assert_eq!(c.codecs, "avc1.64001e");
        assert_eq!((c.width, c.height), (640, 360));
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(c.parameter_sets.len(), 2);
    }

    #[test]
    fn avcc_truncations_never_panic() {
        let full = avcc();
        for n in 0..full.len() {
            assert!(parse_avcc(Bytes::copy_from_slice(&full[..n])).is_err(), "{n}");
        }
        for i in 0..full.len() {
            let mut m = full.clone();
            m[i] ^= 0xff;
            let _ = parse_avcc(Bytes::from(m));
        }
    }

    #[test]
    fn asc_rates() {
        // AAC-LC 48 kHz stereo: 00010 0011 0010 000
        let c = parse_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert_eq!((c.sample_rate, c.channels, c.object_type), (48000, 2, 2));
        assert_eq!(c.codecs, "mp4a.40.2");
        // AAC-LC 44.1 kHz mono: 00010 0100 0001 000
        let c = parse_asc(Bytes::from_static(&[0x12, 0x08])).unwrap();
        assert_eq!((c.sample_rate, c.channels, c.sr_index), (44100, 1, 4));
        assert!(parse_asc(Bytes::from_static(&[0x12])).is_err());
        assert!(parse_asc(Bytes::from_static(&[0x17, 0x80])).is_err()); // index 15 truncated
    }

    pub(crate) fn hvcc() -> Vec<u8> {
        // Main profile, level 2.1 (63), 640x360 SPS from x265.
        let sps: &[u8] = &[
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3f,
            0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x95, 0x9a, 0x49, 0x32, 0xbc, 0x05, 0xa0, 0x20, 0x00, 0x00, 0x03, 0x00,
            0x20, 0x00, 0x00, 0x03, 0x03, 0xc1,
        ];
        let mut v = vec![1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 63];
        v.extend_from_slice(&[0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f, 1, 0xa1, 0, 1]);
        v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        v.extend_from_slice(sps);
        v
    }

    #[test]
    fn hvcc_codecs() {
        let c = parse_hvcc(Bytes::from(hvcc())).unwrap();
        assert_eq!(c.codecs, "hvc1.1.6.L63.90");
        assert_eq!((c.width, c.height), (640, 360));
        let full = hvcc();
        for n in 0..full.len() {
            assert!(parse_hvcc(Bytes::copy_from_slice(&full[..n])).is_err());
        }
    }

    #[test]
    fn av1c_codecs() {
        let c = parse_av1c(Bytes::from_static(&[0x81, 0x08, 0x0c, 0x00])).unwrap();
        assert_eq!(c.codecs, "av01.0.08M.08");
        let c = parse_av1c(Bytes::from_static(&[0x81, 0x2d, 0xc0, 0x00])).unwrap();
        assert_eq!(c.codecs, "av01.1.13H.10");
        assert!(parse_av1c(Bytes::from_static(&[0x81, 0x08])).is_err());
        assert!(parse_av1c(Bytes::from_static(&[0x01, 0x08, 0, 0])).is_err());
    }
}
