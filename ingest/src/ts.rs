//! MPEG-TS muxing for [`crate::Container::Ts`]: PAT/PMT at the start of every segment, H.264
//! or H.265 in Annex B (AUD first, parameter sets before every keyframe), AAC in ADTS,
//! PCR on the video PID (audio PID for audio-only), continuity counters kept across segments.

use bytes::Bytes;
use tracing::debug;

use crate::codec::{AudioConfig, VideoCodec, VideoConfig};
use crate::error::{Error, Result};

const PACKET: usize = 188;
const PID_PAT: u16 = 0;
const PID_PMT: u16 = 0x1000;
const PID_VIDEO: u16 = 0x100;
const PID_AUDIO: u16 = 0x101;
/// AAC frames per audio PES.
const AUDIO_FRAMES_PER_PES: usize = 5;
/// PCR runs this far (90 kHz) behind the decode time.
const PCR_DELAY: u64 = 63_000;

/// One frame handed to the muxer, times in 90 kHz.
#[derive(Debug, Clone)]
pub(crate) struct TsFrame<'a> {
    pub dts: u64,
    pub pts: u64,
    pub keyframe: bool,
    pub data: &'a Bytes,
}

#[derive(Debug)]
struct Video {
    codec: VideoCodec,
    nal_length_size: usize,
    parameter_sets: Vec<Bytes>,
}

#[derive(Debug)]
struct Audio {
    profile: u8,
    sr_index: u8,
    channels: u8,
}

/// Stateful TS muxer (continuity counters) for one track layout.
#[derive(Debug)]
pub(crate) struct TsMuxer {
    video: Option<Video>,
    audio: Option<Audio>,
    cc: [u8; 4],
}

impl TsMuxer {
    pub(crate) fn new(video: Option<&VideoConfig>, audio: Option<&AudioConfig>) -> Result<Self> {
        let video = match video {
            None => None,
            Some(v) if v.codec == VideoCodec::Av1 => {
                return Err(Error::unsupported("TS video", "AV1 (use fMP4)"));
            }
            Some(v) => Some(Video {
                codec: v.codec,
                nal_length_size: usize::from(v.nal_length_size),
                parameter_sets: v.parameter_sets.clone(),
            }),
        };
        let audio = match audio {
            None => None,
            Some(a) if a.sr_index > 12 => {
                return Err(Error::unsupported("ADTS", "explicit sample rate"));
            }
            Some(a) => Some(Audio {
                profile: a.object_type.saturating_sub(1).min(3),
                sr_index: a.sr_index,
                channels: a.channels & 0x07,
            }),
        };
        Ok(Self {
            video,
            audio,
            cc: [0; 4],
        })
    }

    /// Muxes one segment's frames (each list in decode order).
    pub(crate) fn segment(&mut self, video: &[TsFrame<'_>], audio: &[TsFrame<'_>]) -> Result<Bytes> {
        let total: usize = video.iter().chain(audio).map(|f| f.data.len()).sum();
        let mut out = Vec::with_capacity(total + total / 10 + 4 * PACKET);
        self.write_psi(&mut out);
        let pcr_on_video = self.video.is_some();
        let groups: Vec<&[TsFrame<'_>]> = audio.chunks(AUDIO_FRAMES_PER_PES).collect();
        let (mut vi, mut ai) = (0, 0);
        while vi < video.len() || ai < groups.len() {
            let take_video = match (video.get(vi), groups.get(ai).and_then(|g| g.first())) {
                (Some(v), Some(a)) => v.dts <= a.dts,
                (Some(_), None) => true,
                _ => false,
            };
            if take_video {
                let f = &video[vi];
                vi += 1;
                let es = self.annex_b(f);
                let pes = pes(0xe0, f.pts, Some(f.dts), &es, false);
                let pcr = pcr_on_video.then(|| f.dts.saturating_sub(PCR_DELAY));
                self.packetize(&mut out, PID_VIDEO, 2, &pes, pcr, f.keyframe);
            } else {
                let g = groups[ai];
                ai += 1;
                let Some(first) = g.first() else { continue };
                let mut es = Vec::new();
                for f in g {
                    self.adts(&mut es, f.data);
                }
                let pes = pes(0xc0, first.pts, None, &es, true);
                let pcr = (!pcr_on_video).then(|| first.dts.saturating_sub(PCR_DELAY));
                self.packetize(&mut out, PID_AUDIO, 3, &pes, pcr, true);
            }
        }
        Ok(Bytes::from(out))
    }

    fn write_psi(&mut self, out: &mut Vec<u8>) {
        // PAT: program 1 -> PMT PID.
        let mut pat = vec![0x00, 0xb0, 0, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01];
        pat.extend_from_slice(&(0xe000 | PID_PMT).to_be_bytes());
        finish_section(&mut pat);
        self.packetize_section(out, PID_PAT, 0, &pat);

        let pcr_pid = if self.video.is_some() { PID_VIDEO } else { PID_AUDIO };
        let mut pmt = vec![0x02, 0xb0, 0, 0x00, 0x01, 0xc1, 0x00, 0x00];
        pmt.extend_from_slice(&(0xe000 | pcr_pid).to_be_bytes());
        pmt.extend_from_slice(&[0xf0, 0x00]);
        if let Some(v) = &self.video {
            pmt.push(if v.codec == VideoCodec::Hevc { 0x24 } else { 0x1b });
            pmt.extend_from_slice(&(0xe000 | PID_VIDEO).to_be_bytes());
            pmt.extend_from_slice(&[0xf0, 0x00]);
        }
        if self.audio.is_some() {
            pmt.push(0x0f);
            pmt.extend_from_slice(&(0xe000 | PID_AUDIO).to_be_bytes());
            pmt.extend_from_slice(&[0xf0, 0x00]);
        }
        finish_section(&mut pmt);
        self.packetize_section(out, PID_PMT, 1, &pmt);
    }

    fn packetize_section(&mut self, out: &mut Vec<u8>, pid: u16, cc_slot: usize, section: &[u8]) {
        let start = out.len();
        out.extend_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8]);
        out.push(0x10 | self.next_cc(cc_slot));
        out.push(0); // pointer field
        out.extend_from_slice(section);
        out.resize(start + PACKET, 0xff);
    }

    fn next_cc(&mut self, slot: usize) -> u8 {
        let cc = self.cc[slot];
        self.cc[slot] = (cc + 1) & 0x0f;
        cc
    }

    fn packetize(
        &mut self,
        out: &mut Vec<u8>,
        pid: u16,
        cc_slot: usize,
        pes: &[u8],
        pcr: Option<u64>,
        random_access: bool,
    ) {
        let mut pos = 0;
        let mut first = true;
        while pos < pes.len() {
            let mut af: Vec<u8> = Vec::new();
            let mut has_af = false;
            if first && (pcr.is_some() || random_access) {
                has_af = true;
                let mut flags = 0u8;
                if random_access {
                    flags |= 0x40;
                }
                if pcr.is_some() {
                    flags |= 0x10;
                }
                af.push(flags);
                if let Some(base) = pcr {
                    let base = base & 0x1_ffff_ffff;
                    af.extend_from_slice(&[
                        (base >> 25) as u8,
                        (base >> 17) as u8,
                        (base >> 9) as u8,
                        (base >> 1) as u8,
                        ((base & 1) << 7) as u8 | 0x7e,
                        0,
                    ]);
                }
            }
            let mut space = 184 - if has_af { 1 + af.len() } else { 0 };
            let remaining = pes.len() - pos;
            if remaining < space {
                let stuff = space - remaining;
                if has_af {
                    af.resize(af.len() + stuff, 0xff);
                } else {
                    has_af = true;
                    if stuff > 1 {
                        af.push(0);
                        af.resize(stuff - 1, 0xff);
                    }
                }
                space = remaining;
            }
            let pusi = if first { 0x40 } else { 0 };
            out.extend_from_slice(&[0x47, pusi | (pid >> 8) as u8 & 0x1f, pid as u8]);
            let afc = if has_af { 0x30 } else { 0x10 };
            out.push(afc | self.next_cc(cc_slot));
            if has_af {
                out.push(af.len() as u8);
                out.extend_from_slice(&af);
            }
            out.extend_from_slice(&pes[pos..pos + space]);
            pos += space;
            first = false;
        }
    }

    /// Converts a length-prefixed access unit to Annex B with an AUD first and the
    /// parameter sets before keyframes. Stops at the first malformed length.
    fn annex_b(&self, f: &TsFrame<'_>) -> Vec<u8> {
        let Some(v) = &self.video else {
            return Vec::new();
        };
        let hevc = v.codec == VideoCodec::Hevc;
        let mut es = Vec::with_capacity(f.data.len() + 64);
        if hevc {
            es.extend_from_slice(&[0, 0, 0, 1, 0x46, 0x01, 0x50]);
        } else {
            es.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xf0]);
        }
        if f.keyframe {
            for ps in &v.parameter_sets {
                es.extend_from_slice(&[0, 0, 0, 1]);
                es.extend_from_slice(ps);
            }
        }
        let data: &[u8] = f.data;
        let n = v.nal_length_size;
        let mut pos = 0;
        while pos + n <= data.len() {
            let len = data[pos..pos + n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            pos += n;
            let Some(nal) = data.get(pos..pos.saturating_add(len)) else {
                debug!("NAL length past the end of the frame, truncated");
                break;
            };
            pos += len;
            let Some(&h) = nal.first() else { continue };
            let is_aud = if hevc { (h >> 1) & 0x3f == 35 } else { h & 0x1f == 9 };
            if !is_aud {
                es.extend_from_slice(&[0, 0, 0, 1]);
                es.extend_from_slice(nal);
            }
        }
        es
    }

    fn adts(&self, es: &mut Vec<u8>, frame: &[u8]) {
        let Some(a) = &self.audio else { return };
        let len = frame.len() + 7;
        if len > 0x1fff {
            debug!(len, "AAC frame too large for ADTS, dropped");
            return;
        }
        es.extend_from_slice(&[
            0xff,
            0xf1,
            (a.profile << 6) | (a.sr_index << 2) | (a.channels >> 2),
            ((a.channels & 3) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) << 5) as u8 | 0x1f,
            0xfc,
        ]);
        es.extend_from_slice(frame);
    }
}

fn write_ts(out: &mut Vec<u8>, prefix: u8, ts: u64) {
    let ts = ts & 0x1_ffff_ffff;
    out.extend_from_slice(&[
        (prefix << 4) | (((ts >> 30) & 0x07) << 1) as u8 | 1,
        (ts >> 22) as u8,
        (((ts >> 15) & 0x7f) << 1) as u8 | 1,
        (ts >> 7) as u8,
        ((ts & 0x7f) << 1) as u8 | 1,
    ]);
}

fn pes(stream_id: u8, pts: u64, dts: Option<u64>, es: &[u8], sized: bool) -> Vec<u8> {
    let dts = dts.filter(|&d| d != pts);
    let header_len = if dts.is_some() { 10 } else { 5 };
    let mut p = Vec::with_capacity(es.len() + 19);
    p.extend_from_slice(&[0, 0, 1, stream_id]);
    let body = 3 + header_len + es.len();
    let len = if sized { u16::try_from(body).unwrap_or(0) } else { 0 };
    p.extend_from_slice(&len.to_be_bytes());
    p.push(0x80);
    p.push(if dts.is_some() { 0xc0 } else { 0x80 });
    p.push(header_len as u8);
    match dts {
        Some(d) => {
            write_ts(&mut p, 0x3, pts);
            write_ts(&mut p, 0x1, d);
        }
        None => write_ts(&mut p, 0x2, pts),
    }
    p.extend_from_slice(es);
    p
}

/// Fills in the section length and appends the CRC.
fn finish_section(s: &mut Vec<u8>) {
    let len = (s.len() - 3 + 4) as u16;
    s[1] = 0xb0 | ((len >> 8) as u8 & 0x0f);
    s[2] = len as u8;
    let crc = crc32_mpeg2(s);
    s.extend_from_slice(&crc.to_be_bytes());
}

fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{parse_asc, parse_avcc, tests::avcc};

    #[test]
    fn crc_matches_known_pat() {
        // Standard single-program PAT (program 1 -> PID 0x1000) CRC from ffmpeg output.
        let mut pat = vec![0x00, 0xb0, 0, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00];
        finish_section(&mut pat);
        assert_eq!(&pat[pat.len() - 4..], &[0x2a, 0xb1, 0x04, 0xb2]);
    }

    #[test]
    fn packets_are_aligned_and_counted() {
        let v = parse_avcc(Bytes::from(avcc())).unwrap();
        let a = parse_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let mut m = TsMuxer::new(Some(&v), Some(&a)).unwrap();
        let big = Bytes::from({
            let mut f = vec![0, 0, 0x03, 0xe8, 0x65];
            f.resize(1004, 0xaa);
            f
        });
        let small = Bytes::from_static(&[1, 2, 3]);
        let vf = [TsFrame {
            dts: 0,
            pts: 6000,
            keyframe: true,
            data: &big,
        }];
        let af = [TsFrame {
            dts: 100,
            pts: 100,
            keyframe: true,
            data: &small,
        }];
        let seg = m.segment(&vf, &af).unwrap();
        assert_eq!(seg.len() % PACKET, 0);
        let mut video_cc = Vec::new();
        for p in seg.chunks(PACKET) {
            assert_eq!(p[0], 0x47);
            let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            if pid == PID_VIDEO {
                video_cc.push(p[3] & 0x0f);
            }
        }
        assert_eq!(video_cc, (0..video_cc.len() as u8).collect::<Vec<_>>());
        assert!(video_cc.len() >= 6);
        // Annex B: AUD, SPS, PPS, then the IDR slice.
        let es = m.annex_b(&vf[0]);
        assert_eq!(&es[..6], &[0, 0, 0, 1, 9, 0xf0]);
        assert_eq!(&es[6..11], &[0, 0, 0, 1, 0x67]);
        assert!(es.windows(5).any(|w| w == [0, 0, 0, 1, 0x65]));
    }
}
